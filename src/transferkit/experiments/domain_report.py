"""The HTML report of ``compare --unlabeled``: verdicts, the table of methods with intervals, and the shift
(source and target frozen features in a 2-D PCA, before and after CORAL)."""

from __future__ import annotations

import html
from typing import Any

from matplotlib.figure import Figure

from transferkit.experiments.domain import HELPS, HURTS, REFERENCE, points
from transferkit.experiments.report import _figure, _page, _table

SOURCE_COLOR, TARGET_COLOR = "#1f77b4", "#d62728"


def projection_figure(shift: dict[str, Any]) -> Figure:
    """Two panels in the same PCA axes: source and target before alignment, and after CORAL."""
    figure = Figure(figsize=(9.5, 4.2))
    panels = figure.subplots(1, 2, sharex=True, sharey=True)
    target = shift["before"]["target"]
    for axes, (title, source) in zip(
        panels,
        (("before alignment", shift["before"]["source"]), ("after CORAL", shift["after_coral"]["source"])),
        strict=True,
    ):
        for coordinates, color, label in ((source, SOURCE_COLOR, "source (labeled)"), (target, TARGET_COLOR, "target")):
            if coordinates:
                xs, ys = zip(*coordinates, strict=True)
                axes.scatter(xs, ys, s=9, alpha=0.5, color=color, label=label, edgecolors="none")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel(f"PC 1 ({shift['explained_variance'][0]:.0%} of variance)")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(f"PC 2 ({shift['explained_variance'][1]:.0%} of variance)")
    panels[0].legend(loc="best", fontsize=8)
    return figure


def _scores(entry: dict[str, Any]) -> list[Any]:
    """macro-F1, its interval, the difference to source-only and its interval (blank for source-only)."""
    scores = [entry["macro_f1"], f"{entry['low']:.3f}–{entry['high']:.3f}"]
    if "difference" not in entry:
        return [*scores, "", ""]
    interval = f"{points(entry['difference_low'])} to {points(entry['difference_high'])}"
    return [*scores, points(entry["difference"]), interval]


def domain_report(result: dict[str, Any]) -> str:
    """The domain comparison as one HTML string."""
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in result["summary"])
    css = {HELPS: "helps", HURTS: "negative"}
    rows, classes = [], []
    for name, arm in result["arms"].items():
        label = f"auto → {arm['used']}" if name == "auto" else ("source-only" if name == "none" else name)
        rows.append([label, *_scores(arm), arm.get("verdict", "(baseline)"), f"{arm['seconds']:.1f}"])
        classes.append(css.get(arm.get("verdict"), "neutral"))
    reference = result["reference"]
    if "macro_f1" in reference:
        rows.append([REFERENCE, *_scores(reference), "(uses target labels)", f"{reference['seconds']:.1f}"])
        classes.append("")
    header = ["method", "macro-F1", "95% CI", "vs source-only", "95% CI of the difference", "verdict", "seconds"]
    shift = result["shift"]
    distances = _table(
        ["", "before", "after CORAL"],
        [
            ["distance between domain means", shift["before"]["mean_distance"], shift["after_coral"]["mean_distance"]],
            [
                "distance between covariances",
                shift["before"]["covariance_distance"],
                shift["after_coral"]["covariance_distance"],
            ],
        ],
    )
    sections = [
        f'<h2>Verdict</h2><ul class="summary">{summary}</ul>',
        "<h2>Methods on the target test set</h2>" + _table(header, rows, classes),
        "<p class='meta'>Every method trains the same head on frozen features of the labeled source, adapted "
        "with the unlabeled target as <code>transferkit fit --unlabeled --adapt METHOD</code> does. Intervals: "
        f"bootstrap over the {result['n_test']} test examples ({result['rounds']} rounds), paired for the "
        "differences; the verdict says whether the interval of the difference excludes 0. "
        f"{html.escape(REFERENCE)}: {html.escape(reference['method'])}.</p>",
        "<h2>The shift</h2>"
        + _figure(
            projection_figure(shift),
            "source and target features before and after CORAL",
            f"{shift['projection']}, fitted before alignment; right: the source features after CORAL, in the same "
            "axes. Up to 400 points per domain.",
        )
        + distances
        + "<p class='meta'>Distances in the full feature space: between the domain means, relative to the "
        "features' spread (the root of their total variance); between the covariances (Frobenius norm), relative "
        "to the target covariance's.</p>",
    ]
    meta = (
        f"{result.get('source') or 'data'} · backbone {result['backbone']} · {result['n_source']} labeled source, "
        f"{result['n_target']} unlabeled target, {result['n_test']} target test examples"
    )
    return _page("Does domain adaptation help here?", meta, sections)
