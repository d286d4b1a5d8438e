"""Self-contained HTML reports (figures embedded as PNG), next to the JSON they are drawn from.

Two reports: :func:`compare_report` (learning curves, time vs score, verdicts, the chosen model's confusion
matrix, per-class scores and calibration) and :func:`model_report` (what ``transferkit fit`` writes into the
model folder). Figures use matplotlib's object API (no pyplot global state, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from transferkit.explain import EXPLANATION_STYLE, explanations_section

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1000px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
.summary { background: #f4f7fb; border-left: 4px solid #1f77b4; padding: 0.6em 1em; }
.summary li { margin: 0.3em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 9px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.helps { color: #1a7f37; font-weight: 600; } .negative { color: #c62828; font-weight: 600; }
.neutral { color: #555; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(figure: Figure, alt: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(figure)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _page(title: str, meta: str, sections: list[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="meta">{html.escape(meta)}</p>{"".join(sections)}</body></html>'
    )


def learning_curve_figure(result: dict[str, Any]) -> Figure:
    """Score vs labeled examples per arm, with 95% bootstrap bands; scratch arms dashed."""
    figure = Figure(figsize=(7.5, 4.2))
    axes = figure.subplots()
    for i, (arm, curve) in enumerate(result["curves"].items()):
        if not curve:
            continue
        scratch = result["kinds"][arm] == "scratch"
        xs = [p["n"] for p in curve]
        color = PALETTE[i % len(PALETTE)]
        axes.plot(xs, [p["score"] for p in curve], "--" if scratch else "-", marker="o", color=color,
                  label=f"{arm} (scratch)" if scratch else arm)  # fmt: skip
        axes.fill_between(xs, [p["low"] for p in curve], [p["high"] for p in curve], color=color, alpha=0.15)
    axes.set_xscale("log")
    ticks = sorted({round(p["n"]) for curve in result["curves"].values() for p in curve})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("labeled training examples (log scale)")
    axes.set_ylabel(_metric_label(result))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=9)
    return figure


def time_score_figure(result: dict[str, Any]) -> Figure:
    """Wall time vs score, one point per arm and budget."""
    figure = Figure(figsize=(7.5, 4.2))
    axes = figure.subplots()
    for i, (arm, curve) in enumerate(result["curves"].items()):
        if not curve:
            continue
        marker = "s" if result["kinds"][arm] == "scratch" else "o"
        axes.plot([max(p["seconds"], 1e-3) for p in curve], [p["score"] for p in curve], marker=marker,
                  linestyle=":", color=PALETTE[i % len(PALETTE)], label=arm)  # fmt: skip
        for point in curve:
            axes.annotate(point["budget"], (max(point["seconds"], 1e-3), point["score"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")  # fmt: skip
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.minorticks_off()
    axes.set_xlabel("wall seconds per run, fit + predict (log scale)")
    axes.set_ylabel(_metric_label(result))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=9)
    return figure


def confusion_figure(metrics: dict[str, Any]) -> Figure | None:
    """Heat map of the confusion matrix with counts (rows: true class, columns: predicted)."""
    confusion = metrics.get("confusion_matrix") or {}
    matrix, labels = confusion.get("matrix"), confusion.get("labels")
    if not matrix or not labels or len(labels) > 30:
        return None
    size = max(3.5, 0.45 * len(labels) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            axes.text(c, r, str(value), ha="center", va="center", fontsize=8,
                      color="white" if value > peak / 2 else "black")  # fmt: skip
    return figure


def reliability_figure(bins: list[dict[str, float]], ece: float) -> Figure:
    """Reliability diagram: accuracy vs confidence per bin; the diagonal is perfect calibration."""
    figure = Figure(figsize=(4.6, 4.2))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="#999", linestyle="--", label="perfect calibration")
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    widths = [b["high"] - b["low"] for b in bins]
    axes.bar(centers, [b["accuracy"] for b in bins], width=widths, edgecolor="#1f77b4", color="#1f77b4", alpha=0.55,
             label="accuracy in bin")  # fmt: skip
    axes.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#d62728",
              label="mean confidence")  # fmt: skip
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"ECE = {ece:.3f}", fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    return figure


def _metric_label(result: dict[str, Any]) -> str:
    return "R²" if result.get("task") == "regression" else "macro-F1"


def _metrics_sections(metrics: dict[str, Any], calibration: dict[str, Any] | None) -> list[str]:
    sections = []
    if "per_class" in metrics:
        rows = [
            [name, values.get("precision"), values.get("recall"), values.get("f1"), values.get("support")]
            for name, values in metrics["per_class"].items()
        ]
        sections.append("<h3>Per-class scores</h3>" + _table(["class", "precision", "recall", "F1", "support"], rows))
    figure = confusion_figure(metrics)
    if figure is not None:
        sections.append(_figure(figure, "confusion matrix", "Confusion matrix on the test set (counts)."))
    if calibration and calibration.get("reliability"):
        sections.append(
            _figure(
                reliability_figure(calibration["reliability"], calibration["ece"]),
                "reliability diagram",
                "Reliability diagram: bars at the diagonal mean the predicted probabilities can be trusted.",
            )
        )
    headline = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    if headline:
        sections.insert(0, "<h3>Test metrics</h3>" + _table(["metric", "value"], [[k, v] for k, v in headline.items()]))
    return sections


def compare_report(result: dict[str, Any]) -> str:
    """The compare report as one HTML string."""
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in result["summary"])
    css = {"transfer helps": "helps", "negative transfer": "negative", "no measurable difference": "neutral"}
    verdicts = _table(
        ["budget", "examples", "best transfer", "best scratch", "gain", "95% CI", "verdict"],
        [
            [
                g["budget"],
                f"{g['n']:.0f}",
                g["transfer"],
                g["scratch"],
                f"{g['gain'] * 100:+.1f}",
                f"{g['low'] * 100:+.1f} to {g['high'] * 100:+.1f}",
                g["verdict"],
            ]
            for g in result["gains"]
        ],
        [css[g["verdict"]] for g in result["gains"]],
    )
    curve_rows = [
        [arm, p["budget"], f"{p['n']:.0f}", p["score"], f"{p['low']:.3f}–{p['high']:.3f}", f"{p['seconds']:.1f}"]
        for arm, curve in result["curves"].items()
        for p in curve
    ]
    sections = [
        f'<h2>Verdict</h2><ul class="summary">{summary}</ul>',
        "<h2>Transfer vs scratch, per budget</h2>" + verdicts,
        "<p class='meta'>Gain: best transfer arm minus best scratch arm, points of "
        f"{_metric_label(result)}; interval: paired bootstrap over test examples, averaged over seeds.</p>",
        "<h2>Learning curves</h2>"
        + _figure(learning_curve_figure(result), "learning curves", "Mean over seeds with 95% bootstrap intervals."),
        "<h2>Time vs score</h2>"
        + _figure(time_score_figure(result), "time vs score", "Each point: one arm at one budget (labels per class)."),
        "<h2>All runs (means over seeds)</h2>"
        + _table(["arm", "budget", "examples", _metric_label(result), "95% CI", "seconds"], curve_rows),
    ]
    chosen = result.get("chosen") or {}
    if chosen:
        sections.append(f"<h2>Best arm at {html.escape(chosen['budget'])}: {html.escape(chosen['arm'])}</h2>")
        sections.extend(_metrics_sections(chosen["metrics"], chosen))
    meta = (
        f"{result.get('source') or 'data'} · task {result.get('task')} · backbone {result.get('backbone')} · "
        f"{result.get('n_pool')} training-pool / {result.get('n_test')} test examples · {result.get('seeds')} seeds"
    )
    return _page("Is transfer worth it here?", meta, sections)


def model_report(model: Any, calibration: dict[str, Any] | None = None, examples: list[tuple[Any, Any]] = ()) -> str:
    """Report of a fitted model: what was trained, why (auto), test metrics, confusion matrix, calibration, and
    ``examples``: (true label, :class:`~transferkit.explain.Explanation`) pairs of explained test inputs."""
    facts = [
        ["task", model.task],
        ["strategy", model.strategy],
        ["backbone", getattr(model.backbone, "name", "?")],
        ["training examples", model.data_info.get("n_train", "?")],
        ["test examples", model.data_info.get("n_test", "?")],
        ["fit seconds", model.info.get("fit_seconds", "?")],
        ["temperature", model.temperature],
    ]
    sections = ["<h2>Model</h2>" + _table(["", "value"], facts)]
    auto = model.info.get("auto")
    if auto:
        sections.append(f'<h2>Why this strategy</h2><p class="summary">{html.escape(str(auto.get("reason")))}</p>')
    if model.metrics:
        sections.append("<h2>Held-out evaluation</h2>")
        sections.extend(_metrics_sections(model.metrics, calibration))
    else:
        sections.append("<p>No test set was held out, so there is nothing to evaluate.</p>")
    if examples:
        truths, explained = zip(*examples, strict=True)
        sections.append(
            f"<h2>Test examples explained</h2><style>{EXPLANATION_STYLE}</style>"
            "<p class='meta'>A few right and wrong predictions on held-out texts, with the words that moved them "
            "(see <code>transferkit explain</code> for your own inputs).</p>" + explanations_section(explained, truths)
        )
    return _page("transferkit model report", f"{model.data_info.get('source', '')}", sections)
