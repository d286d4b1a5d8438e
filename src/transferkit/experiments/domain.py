"""``transferkit compare DATA --unlabeled TARGET --test TARGET_TEST``: does domain adaptation help here?

On the labeled source data, every adaptation method of ``fit`` (:mod:`transferkit.strategies.adapt`) runs the
way ``transferkit fit DATA --unlabeled TARGET --adapt METHOD --strategy feature-extraction`` runs it: source-only
(``none``), CORAL, subspace alignment, self-training, AdaBN (backbones with batch norm) and ``auto``. All are
scored on the labeled target test set, with a paired bootstrap interval (over test examples) of each method's
macro-F1 minus source-only's and a verdict: adaptation helps, no measurable difference, or hurts.

The target-supervised reference (how well the frozen features can do on the target with target labels) is
2-fold cross-fitted on the test set: each stratified half is predicted by the same head trained on the other
half's labels, so it is scored on the same test examples as the other arms and joins the same bootstrap.

The shift itself is measured on the frozen features: a 2-D PCA fitted on both domains (source and unlabeled
target) shows them before and after CORAL, with the distance between the domain means and between their
covariances (CORAL's loss), relative to the features' spread, in numbers.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from transferkit.adaptation.adabn import batch_norm_layers
from transferkit.adaptation.alignment import coral
from transferkit.backbones import Backbone, create_backbone
from transferkit.backbones.catalog import DEFAULT_BACKBONES
from transferkit.config import FitConfig
from transferkit.data import LabeledData
from transferkit.data.media import infer_modality
from transferkit.errors import DataError, TransferKitError
from transferkit.evaluation import stats
from transferkit.progress import progress_bar, say
from transferkit.strategies.adapt import check_target_modality
from transferkit.strategies.common import frozen_embeddings
from transferkit.strategies.fit import fit_model
from transferkit.targets import TargetEncoder

METHODS = ("none", "coral", "subspace", "self-training", "adabn", "auto")
REFERENCE = "target-supervised"
HELPS, NO_DIFFERENCE, HURTS = "adaptation helps", "no measurable difference", "hurts"
_VERDICTS = {stats.HELPS: HELPS, stats.NO_DIFFERENCE: NO_DIFFERENCE, stats.NEGATIVE: HURTS}
PROJECTED_POINTS = 400  # per domain, in the JSON and the figure


def require_test(test: Any) -> None:
    """Raises TransferKitError, in one line, when there is no labeled target test set."""
    if test is None:
        raise TransferKitError(
            "compare --unlabeled needs --test TARGET_TEST: labeled target examples to score the methods on"
        )


def check_domain_inputs(data: LabeledData, unlabeled: list[Any] | None, test: LabeledData | None) -> None:
    """Refuse, in one line, what a domain comparison cannot score, before anything is embedded.

    Raises:
        TransferKitError: No test set, or a task other than classification.
        DataError: Empty target data, or a test set without labels.
    """
    require_test(test)
    if unlabeled is None or len(unlabeled) == 0:
        raise DataError("the unlabeled target data hold no inputs; pass a table or folder with some")
    if len(test.inputs) == 0 or any(label is None or label != label or label == "" for label in test.y):
        raise DataError("the target test set needs a label on every row (it scores the methods)")
    if data.task != "classification":
        raise TransferKitError(f"compare --unlabeled measures classification (macro-F1), not {data.task}")


def compare_domain(
    data: LabeledData,
    unlabeled: list[Any],
    test: LabeledData,
    *,
    backbone: str | dict | Backbone | None = None,
    methods: tuple[str, ...] = METHODS,
    rounds: int = 1000,
    quiet: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Source-only vs each adaptation method vs the target-supervised reference, scored on the target test set.

    Args:
        data: Labeled source data.
        unlabeled: Unlabeled target inputs (the methods adapt to them).
        test: Labeled target test set (never seen by the methods).
        backbone: Frozen backbone (default: the modality's default).
        methods: Adaptation methods to run ("none" is always run; "adabn" only on backbones with batch norm).
        rounds: Bootstrap rounds for the intervals.
        quiet: No progress bar or status lines.
        **settings: :class:`~transferkit.config.FitConfig` fields (max_length, head, seed, ...).

    Returns:
        JSON-ready results: ``arms`` (score, interval, difference to source-only with its interval, verdict,
        seconds, what auto chose), ``reference``, ``shift`` (projection and distances), ``summary`` lines.

    Raises:
        TransferKitError, DataError: See :func:`check_domain_inputs`; a target of another modality.
    """
    check_domain_inputs(data, unlabeled, test)
    settings = {k: v for k, v in settings.items() if k not in ("strategy", "adapt", "quiet")}
    base = FitConfig.from_settings(strategy="feature-extraction", quiet=True, **settings)
    modality = data.extra.get("modality") or infer_modality(data.inputs[:1])
    backbone = create_backbone(backbone or DEFAULT_BACKBONES[modality], max_length=base.max_length)
    check_target_modality(data.inputs, unlabeled, backbone)
    check_target_modality(data.inputs, test.inputs, backbone)
    encoder = TargetEncoder.fit(list(data.y) + list(test.y), "classification")
    truth = encoder.encode(test.y)
    say(
        f"compare: {len(data.inputs)} labeled source, {len(unlabeled)} unlabeled target and {len(test.inputs)} "
        f"target test examples on {backbone.name}",
        quiet=quiet,
    )
    features = {  # once, into the cache that every arm then reads
        name: frozen_embeddings(backbone, inputs, base, quiet=quiet)
        for name, inputs in (("source", data.inputs), ("target", unlabeled), ("test", test.inputs))
    }
    chosen = [m for m in dict.fromkeys(("none", *methods)) if m != "adabn" or batch_norm_layers(backbone)]
    arms: dict[str, dict[str, Any]] = {}
    predictions: dict[str, np.ndarray] = {}
    with progress_bar("compare", len(chosen) + 1, quiet=quiet) as advance:
        for method in chosen:
            start = time.perf_counter()
            config = replace(base, adapt=method)
            model = fit_model(data.inputs, data.y, task="classification", backbone=backbone, config=config,
                              unlabeled=unlabeled)  # fmt: skip
            predictions[method] = _indices(model.predict(test.inputs), encoder)
            record = model.info.get("adaptation", {})
            arms[method] = {"seconds": time.perf_counter() - start, "used": record.get("method", method)}
            if method == "auto":
                arms[method].update(reason=record.get("reason"), reverse_validation=record.get("reverse_validation"))
            advance(1)
        reference = _cross_fitted(test, backbone, base, encoder)
        advance(1)
    if (cross_fitted := reference.pop("predicted")) is not None:
        predictions[REFERENCE] = cross_fitted
    _score(arms, reference, predictions, truth, rounds)
    result: dict[str, Any] = {
        "kind": "domain",
        "task": "classification",
        "metric": "macro_f1",
        "backbone": backbone.name,
        "source": data.source,
        "n_source": len(data.inputs),
        "n_target": len(unlabeled),
        "n_test": len(test.inputs),
        "rounds": rounds,
        "arms": arms,
        "reference": reference,
        "shift": shift_summary(features["source"], features["target"], seed=base.seed or 0),
    }
    result["summary"] = domain_summary(result)
    return result


def _indices(labels: list[Any], encoder: TargetEncoder) -> np.ndarray:
    index = {c: i for i, c in enumerate(encoder.classes)}
    return np.array([index[str(label)] for label in labels])


def _cross_fitted(test: LabeledData, backbone: Backbone, base: FitConfig, encoder: TargetEncoder) -> dict[str, Any]:
    """Out-of-fold predictions of the target-supervised head on the whole test set (2 stratified folds), or the
    reason there are none."""
    labels = np.array([str(v) for v in test.y])
    _, counts = np.unique(labels, return_counts=True)
    method = "2-fold cross-fitted on the target test set: each half predicted by a head trained on the other's labels"
    if len(counts) < 2 or counts.min() < 2:
        return {"method": method, "predicted": None, "skipped": "every class needs 2 labeled test examples"}
    start = time.perf_counter()
    predicted = np.zeros(len(labels), dtype=int)
    splitter = StratifiedKFold(n_splits=2, shuffle=True, random_state=base.seed or 0)
    for train, held in splitter.split(labels, labels):
        model = fit_model([test.inputs[i] for i in train], [test.y[i] for i in train], task="classification",
                          backbone=backbone, config=replace(base, adapt="none"))  # fmt: skip
        predicted[held] = _indices(model.predict([test.inputs[i] for i in held]), encoder)
    return {"method": method, "predicted": predicted, "seconds": time.perf_counter() - start}


def _score(arms: dict, reference: dict, predictions: dict, truth: np.ndarray, rounds: int) -> None:
    """Scores with bootstrap intervals, and each arm's paired difference to source-only with its verdict."""
    weights = stats.resample_weights(len(truth), rounds, seed=0)
    draws = {name: stats.weighted_scores("classification", truth, p, weights) for name, p in predictions.items()}
    for name, predicted in predictions.items():
        entry = arms.get(name, reference)
        low, high = stats.interval(draws[name])
        entry.update(macro_f1=float(stats.weighted_scores("classification", truth, predicted, np.ones(len(truth)))[0]),
                     low=low, high=high)  # fmt: skip
        if name == "none":
            continue
        difference_low, difference_high = stats.interval(draws[name] - draws["none"])
        entry.update(difference=entry["macro_f1"] - arms["none"]["macro_f1"], difference_low=difference_low,
                     difference_high=difference_high)  # fmt: skip
        if name != REFERENCE:
            entry["verdict"] = _VERDICTS[stats.verdict(difference_low, difference_high)]


def shift_summary(source: np.ndarray, target: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """A 2-D PCA fitted on both domains' frozen features, the domains in it before and after CORAL (the source
    moved onto the target), and two distances in the full feature space, before and after: between the domain
    means, relative to the features' spread (the root of their total variance), and between their covariances
    (Frobenius norm, CORAL's loss without its 1/4d^2), relative to the target covariance's norm.

    Shape:
        source (n_s, d), target (n_t, d) -> points: lists of up to :data:`PROJECTED_POINTS` (x, y) per domain.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    both = np.concatenate([source, target])
    mean = both.mean(0)
    _, singular, axes = np.linalg.svd(both - mean, full_matrices=False)
    axes = axes[:2].T
    explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
    aligned = coral(source, target).source(source).astype(np.float64)
    spread = max(float(np.sqrt(both.var(0).sum())), 1e-12)
    target_covariance = np.cov(target, rowvar=False)
    size = max(float(np.linalg.norm(target_covariance)), 1e-12)

    def gaps(moved: np.ndarray) -> dict[str, float]:
        covariance = np.cov(moved, rowvar=False) - target_covariance
        return {
            "mean_distance": float(np.linalg.norm(moved.mean(0) - target.mean(0)) / spread),
            "covariance_distance": float(np.linalg.norm(covariance) / size),
        }

    rng = np.random.default_rng(seed)
    keep_source = np.sort(rng.permutation(len(source))[:PROJECTED_POINTS])
    keep_target = np.sort(rng.permutation(len(target))[:PROJECTED_POINTS])
    project = lambda X: np.round((X - mean) @ axes, 4).tolist()  # noqa: E731
    return {
        "projection": "PCA on both domains' frozen features (source + unlabeled target)",
        "explained_variance": [float(v) for v in explained],
        "before": {"source": project(source[keep_source]), "target": project(target[keep_target]), **gaps(source)},
        "after_coral": {"source": project(aligned[keep_source]), **gaps(aligned)},
    }


def points(difference: float) -> str:
    """A difference of scores in signed points (0.012 -> "+1.2"; no "-0.0")."""
    return f"{round(difference * 100, 1) + 0.0:+.1f}"


def domain_summary(result: dict[str, Any]) -> list[str]:
    """Sentences a person reads first: the verdict per method, auto's choice, and the target-supervised gap."""
    arms, lines = result["arms"], []
    none = arms["none"]
    lines.append(f"Source-only scores {none['macro_f1']:.3f} macro-F1 on the target test set.")
    for name, arm in arms.items():
        if name == "none" or "verdict" not in arm:
            continue
        label = f"auto (chose {arm['used']})" if name == "auto" else name
        lines.append(
            f"{label}: {arm['macro_f1']:.3f}, {arm['verdict']}: {points(arm['difference'])} points vs source-only "
            f"(95% CI {points(arm['difference_low'])} to {points(arm['difference_high'])})."
        )
    if "auto" in arms and arms["auto"].get("reason"):
        lines.append(f"auto's reason: {arms['auto']['reason']}.")
    reference = result["reference"]
    if "macro_f1" in reference:
        side = "above" if reference["difference"] >= 0 else "below"
        lines.append(
            f"The {REFERENCE} reference (the same head on target labels, 2-fold cross-fitted on the test set) "
            f"scores {reference['macro_f1']:.3f}, {abs(reference['difference']) * 100:.1f} points {side} source-only."
        )
    else:
        lines.append(f"No {REFERENCE} reference: {reference['skipped']}.")
    before, after = result["shift"]["before"], result["shift"]["after_coral"]
    lines.append(
        f"The shift: domain means {before['mean_distance']:.2f} apart before CORAL, {after['mean_distance']:.2f} "
        f"after (in units of the features' spread); covariances {before['covariance_distance']:.2f} apart before, "
        f"{after['covariance_distance']:.2f} after (relative to the target's)."
    )
    return lines
