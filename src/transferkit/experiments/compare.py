"""``transferkit compare``: learning curves of transfer vs from-scratch baselines on the user's own data.

For each label budget and seed, every arm (transfer strategies and scratch baselines) trains on the *same*
sampled examples and is scored on the *same* held-out test set. From the curves come the verdict per budget
(a paired bootstrap over test examples and seeds), the labels and time saved at equal score, and a plain
summary that says when transfer does not help.

Timing is honest about caching: all inputs are embedded once (the cache makes every later run cheap), and
each run that read cached embeddings is charged their encoding time at the measured cold rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from transferkit.backbones import Backbone, create_backbone
from transferkit.backbones.catalog import DEFAULT_BACKBONES
from transferkit.cache import embed
from transferkit.config import FitConfig
from transferkit.data import LabeledData, train_test_indices
from transferkit.data.media import infer_modality
from transferkit.errors import TransferKitError
from transferkit.evaluation import stats
from transferkit.evaluation.calibration import expected_calibration_error, reliability_bins
from transferkit.evaluation.metrics import compute_metrics
from transferkit.experiments.baselines import BASELINES, baselines_for
from transferkit.model import TransferModel
from transferkit.progress import progress_bar, say
from transferkit.strategies.fit import fit_model
from transferkit.strategies.registry import STRATEGIES, transfer_arms
from transferkit.targets import TargetEncoder

DEFAULT_BUDGETS: tuple[int | str, ...] = (4, 8, 16, 32, 64, "full")
DEFAULT_STRATEGIES = ("feature-extraction", "finetune")
BOOTSTRAP_ROUNDS = 1000


def parse_budgets(text: str | Sequence[int | str]) -> list[int | str]:
    """``"4,8,full"`` -> ``[4, 8, "full"]``; budgets are labels per class (examples, for regression)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    budgets: list[int | str] = []
    for item in items:
        item = str(item).strip()
        if item == "full":
            budgets.append("full")
        elif item.isdigit() and int(item) >= 1:
            budgets.append(int(item))
        else:
            message = f"budget {item!r} is not a positive whole number or 'full'; example: --budgets 4,8,16"
            raise TransferKitError(message)
    if not budgets:
        raise TransferKitError("no budgets given; example: --budgets 4,8,16,full")
    return sorted(set(budgets), key=lambda b: (b == "full", b if b != "full" else 0))


def sample_budget(y: list[Any], task: str, budget: int | str, seed: int) -> np.ndarray:
    """Indices of a training sample: ``budget`` per class (classification), else ``budget`` examples.

    Multi-label data draw ``budget`` x number of labels examples at random. Classes with fewer examples than
    the budget contribute all they have.
    """
    n = len(y)
    if budget == "full":
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if task == "classification":
        labels = np.array([str(v) for v in y])
        picked = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            picked.append(rng.choice(members, min(budget, len(members)), replace=False))
        return np.sort(np.concatenate(picked))
    count = budget * (len({v for row in y for v in row}) if task == "multilabel" else 1)
    return np.sort(rng.choice(n, min(count, n), replace=False))


def _encode_predictions(model: TransferModel, inputs: list[Any], target: TargetEncoder) -> tuple[np.ndarray, Any]:
    """Predictions in the test encoding (class index / indicator matrix / numbers) and probabilities."""
    scores = model.scores(inputs)
    predicted = model.predict_from_scores(scores)
    if target.task == "regression":
        return np.asarray(predicted, dtype=np.float64), None
    probabilities = model.proba_from_scores(scores)
    if target.task == "multilabel":
        return target.encode(predicted).astype(int), probabilities
    index = {c: i for i, c in enumerate(target.classes)}
    full = np.zeros((len(inputs), len(target.classes)))
    for column, name in enumerate(model.classes):
        full[:, index[name]] = probabilities[:, column]
    return np.array([index[str(p)] for p in predicted]), full


def compare(
    data: LabeledData,
    *,
    test: LabeledData | None = None,
    test_size: float = 0.2,
    budgets: Sequence[int | str] = DEFAULT_BUDGETS,
    seeds: int = 3,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    baselines: Sequence[str] | None = None,
    backbone: str | dict | Backbone | None = None,
    max_run_seconds: float = 600.0,
    rounds: int = BOOTSTRAP_ROUNDS,
    quiet: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Learning curves of transfer strategies vs scratch baselines, verdicts and savings.

    Args:
        data: Labeled training pool (budgets sample from it).
        test: Held-out test set; when None, ``test_size`` of ``data`` is held out (stratified, seed 0).
        budgets: Labels per class (examples for regression), and/or ``"full"`` for the whole pool.
        seeds: Samples (and training seeds) per budget.
        strategies: Transfer strategies to run (any registered strategy that is not from scratch:
            "feature-extraction", "finetune", "auto", ...).
        baselines: Scratch baselines; default: every baseline registered for the data's modality.
        backbone: Backbone for the transfer arms (and the architecture of ``scratch-encoder``).
        max_run_seconds: An arm whose next run is predicted (a line through its times at the two largest
            budgets) to take longer than this is skipped at that budget, and the result says so.
        rounds: Bootstrap rounds for the intervals.
        **settings: :class:`~transferkit.config.FitConfig` fields for the transfer arms (max_length, epochs...).
            The transfer arms run without the n-gram blend (``ngrams="off"``) unless ``ngrams`` is given: the
            verdicts say what the pre-trained backbone brings over the n-gram baseline, not over itself.

    Returns:
        JSON-ready results: ``runs``, ``curves``, ``gains`` (verdict per budget), ``savings``, ``summary``,
        ``chosen`` (metrics and calibration of the best arm at the largest budget).
    """
    budgets = parse_budgets(budgets)
    if seeds < 1:
        raise TransferKitError(f"seeds must be >= 1, got {seeds}")
    transfer = transfer_arms()
    for strategy in strategies:
        if strategy not in transfer:
            raise TransferKitError(f"unknown strategy {strategy!r}; choose from {', '.join(transfer)}")
    settings = {"ngrams": "off", **settings}
    base = FitConfig.from_settings(quiet=True, **{k: v for k, v in settings.items() if k not in ("strategy", "quiet")})
    if backbone is None:
        backbone = DEFAULT_BACKBONES[data.extra.get("modality") or infer_modality(data.inputs[:1])]
    backbone = create_backbone(backbone, max_length=base.max_length)
    if baselines is None:  # the same architecture from random weights needs a backbone that can train
        baselines = [b for b in baselines_for(backbone.modality) if backbone.trainable or b != "scratch-encoder"]
    baselines = list(baselines)
    for name in baselines:
        BASELINES.info(name)  # "unknown baseline ... did you mean" for typos
    task = data.task
    if test is None:
        pool_part, test_part = train_test_indices(data.y, test_size=test_size, task=task, seed=0)
        pool_inputs, pool_y = [data.inputs[i] for i in pool_part], [data.y[i] for i in pool_part]
        test_inputs, test_y = [data.inputs[i] for i in test_part], [data.y[i] for i in test_part]
    else:
        pool_inputs, pool_y, test_inputs, test_y = data.inputs, data.y, test.inputs, test.y
    target = TargetEncoder.fit(list(pool_y) + list(test_y), task)
    truth = target.encode(test_y) if task != "regression" else np.asarray(test_y, dtype=np.float64)
    if task == "multilabel":
        truth = truth.astype(int)

    # A strategy that chooses among the others (auto) is reported apart: its gap to the best arm is a finding.
    arms = [(s, "auto" if STRATEGIES.get(s).kind == "meta" else "transfer") for s in strategies]
    arms += [(b, "scratch") for b in baselines]
    # The full set runs once: its data do not change with the seed.
    plan = [(budget, seed) for budget in budgets for seed in range(seeds if budget != "full" else 1)]
    samples = {(budget, seed): sample_budget(pool_y, task, budget, seed) for budget, seed in plan}

    # Embed every input once; later runs read the cache and are charged the cold rate for what they read.
    say(f"compare: {len(pool_inputs)} training-pool and {len(test_inputs)} test examples, task {task}", quiet=quiet)
    used = sorted(set(np.concatenate(list(samples.values())).tolist()))
    rate = _encode_seconds_per_input(backbone, [pool_inputs[i] for i in used] + test_inputs, base)
    embed(backbone, [pool_inputs[i] for i in used] + test_inputs, cache_dir=base.cache_dir, use_cache=base.use_cache,
          quiet=quiet)  # fmt: skip
    runs: list[dict[str, Any]] = []
    outputs: dict[tuple[str, str, int], tuple[np.ndarray, Any]] = {}
    timings: dict[str, dict[int, list[float]]] = {}  # arm -> examples -> seconds of its runs
    with progress_bar("compare", len(plan) * len(arms), quiet=quiet) as advance:
        for budget, seed in plan:
            chosen = samples[(budget, seed)]
            train_inputs, train_y = [pool_inputs[i] for i in chosen], [pool_y[i] for i in chosen]
            for arm, kind in arms:
                row = {"arm": arm, "kind": kind, "budget": str(budget), "seed": seed, "n": len(chosen)}
                estimate = _predict_seconds(timings.get(arm, {}), len(chosen))
                if estimate > max_run_seconds:
                    row["skipped"] = f"predicted {estimate:.0f}s > max_run_seconds {max_run_seconds:.0f}"
                    runs.append(row)
                    advance(1)
                    continue
                config = replace(base, strategy=arm if kind != "scratch" else "feature-extraction", seed=seed)
                start = time.perf_counter()
                if kind == "scratch":
                    model = BASELINES.create(arm, inputs=train_inputs, y=train_y, task=task, config=config,
                                             backbone=backbone)  # fmt: skip
                else:
                    model = fit_model(train_inputs, train_y, task=task, backbone=backbone, config=config)
                predicted, probabilities = _encode_predictions(model, test_inputs, target)
                seconds = time.perf_counter() - start
                if kind != "scratch":  # cached embeddings it read: train (+ test when the encoder stayed frozen)
                    seconds += rate * (len(chosen) + (0 if model.finetuned else len(test_inputs)))
                timings.setdefault(arm, {}).setdefault(len(chosen), []).append(seconds)
                score = float(stats.weighted_scores(task, truth, predicted, np.ones((1, len(truth))))[0])
                row.update(score=score, seconds=seconds, strategy=model.strategy)
                if "auto" in model.info:
                    row["auto_choice"] = model.info["auto"].get("chosen")
                runs.append(row)
                outputs[(arm, str(budget), seed)] = (predicted, probabilities)
                advance(1)
    result = summarise(task, truth, runs, outputs, rounds=rounds)
    result.update(
        task=task,
        metric="r2" if task == "regression" else "macro_f1",
        backbone=backbone.name,
        budgets=[str(b) for b in budgets],
        seeds=seeds,
        n_pool=len(pool_inputs),
        n_test=len(test_inputs),
        encode_seconds_per_text=rate,
        source=data.source,
    )
    result["chosen"] = _chosen_details(result, runs, outputs, truth, target, test_y)
    return result


def _predict_seconds(history: dict[int, list[float]], n: int) -> float:
    """Seconds a run on ``n`` examples should take: the line through the mean times of the two largest sizes
    run so far (a fixed part, such as encoding the test set, plus a part that grows with the examples);
    proportional from one size; 0 (run it) with none."""
    sizes = sorted(history)
    if not sizes:
        return 0.0
    mean = {size: float(np.mean(history[size])) for size in sizes[-2:]}
    if len(sizes) == 1 or n <= sizes[-1]:
        return mean[sizes[-1]] * max(n / sizes[-1], 1.0)
    (n1, s1), (n2, s2) = mean.items()
    slope = max((s2 - s1) / (n2 - n1), 0.0)
    return s2 + slope * (n - n2)


def _encode_seconds_per_input(backbone: Backbone, inputs: list[Any], config: FitConfig) -> float:
    """Cold encoding cost per input, measured on up to 64 inputs outside the cache."""
    sample = inputs[:: max(1, len(inputs) // 64)][:64]
    backbone.encode(sample, batch_size=32)  # warm-up: a lazy ONNX export / session start is not per-input cost
    start = time.perf_counter()
    backbone.encode(sample, batch_size=32)
    return (time.perf_counter() - start) / max(1, len(sample))


def summarise(
    task: str,
    truth: np.ndarray,
    runs: list[dict[str, Any]],
    outputs: dict[tuple[str, str, int], tuple[np.ndarray, Any]],
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> dict[str, Any]:
    """Curves with bootstrap intervals, the gain of the best transfer arm over the best scratch arm per budget
    (paired bootstrap over test examples, averaged over seeds), verdicts, savings and the plain summary."""
    weights = stats.resample_weights(len(truth), rounds, seed=0)
    done = [r for r in runs if "score" in r]
    budgets = list(dict.fromkeys(r["budget"] for r in runs))
    curves: dict[str, list[dict[str, Any]]] = {}
    boot: dict[tuple[str, str], np.ndarray] = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        curves[arm] = []
        for budget in budgets:
            mine = [r for r in done if r["arm"] == arm and r["budget"] == budget]
            if not mine:
                continue
            draws = np.mean(
                [stats.weighted_scores(task, truth, outputs[(arm, budget, r["seed"])][0], weights) for r in mine],
                axis=0,
            )
            boot[(arm, budget)] = draws
            low, high = stats.interval(draws)
            scores = [r["score"] for r in mine]
            curves[arm].append(
                {
                    "budget": budget,
                    "n": float(np.mean([r["n"] for r in mine])),
                    "score": float(np.mean(scores)),
                    "std": float(np.std(scores)),
                    "low": low,
                    "high": high,
                    "seconds": float(np.mean([r["seconds"] for r in mine])),
                    "runs": len(mine),
                }
            )
    kinds = {r["arm"]: r["kind"] for r in runs}
    gains = []
    for budget in budgets:
        best = {}
        for kind in ("transfer", "scratch"):
            candidates = [
                (point["score"], arm)
                for arm, curve in curves.items()
                if kinds[arm] == kind
                for point in curve
                if point["budget"] == budget
            ]
            best[kind] = max(candidates)[1] if candidates else None
        if best["transfer"] is None or best["scratch"] is None:
            continue
        # Same test resamples for both arms: the interval is of the paired difference.
        difference = boot[(best["transfer"], budget)] - boot[(best["scratch"], budget)]
        low, high = stats.interval(difference)
        point = _point(curves, best["transfer"], budget)["score"] - _point(curves, best["scratch"], budget)["score"]
        gains.append(
            {
                "budget": budget,
                "n": _point(curves, best["transfer"], budget)["n"],
                "transfer": best["transfer"],
                "scratch": best["scratch"],
                "gain": point,
                "low": low,
                "high": high,
                "verdict": stats.verdict(low, high),
            }
        )
    result: dict[str, Any] = {"runs": runs, "curves": curves, "gains": gains, "kinds": kinds}
    result["savings"] = _savings(curves, kinds)
    result["auto_gaps"] = _auto_gaps(curves, kinds)
    result["summary"] = plain_summary(task, gains, result["savings"], result["auto_gaps"], runs)
    return result


def _point(curves: dict[str, list[dict[str, Any]]], arm: str, budget: str) -> dict[str, Any]:
    return next(p for p in curves[arm] if p["budget"] == budget)


def _envelope(curves: dict[str, list[dict[str, Any]]], kinds: dict[str, str], kind: str) -> list[dict[str, Any]]:
    """Per budget, the best arm of ``kind``: what a user who picked that family well would get."""
    best: dict[str, dict[str, Any]] = {}
    for arm, curve in curves.items():
        if kinds[arm] != kind:
            continue
        for point in curve:
            if point["budget"] not in best or point["score"] > best[point["budget"]]["score"]:
                best[point["budget"]] = {**point, "arm": arm}
    return list(best.values())


def _savings(curves, kinds) -> dict[str, Any] | None:
    transfer, scratch = _envelope(curves, kinds, "transfer"), _envelope(curves, kinds, "scratch")
    return stats.savings(transfer, scratch) if transfer and scratch else None


def _auto_gaps(curves, kinds) -> list[dict[str, Any]]:
    """How far ``auto`` ends below the best other arm at each budget (0 when it matches or beats it)."""
    gaps = []
    for point in curves.get("auto", []):
        others = [p for arm, curve in curves.items() if arm != "auto" for p in curve if p["budget"] == point["budget"]]
        if others:
            best = max(others, key=lambda p: p["score"])
            gaps.append({"budget": point["budget"], "auto": point["score"], "best": best["score"],
                         "gap": best["score"] - point["score"]})  # fmt: skip
    return gaps


def _budget_words(budget: str, task: str) -> str:
    if budget == "full":
        return "the full training set"
    return f"{budget} labels per class" if task == "classification" else f"{budget} examples"


def plain_summary(
    task: str,
    gains: list[dict[str, Any]],
    saved: dict[str, Any] | None,
    auto_gaps: list[dict[str, Any]],
    runs: list[dict[str, Any]],
) -> list[str]:
    """Sentences a person reads first: verdict per budget, savings, auto, skipped runs."""
    unit = "R2" if task == "regression" else "macro-F1"
    lines = []
    for gain in gains:
        words = _budget_words(gain["budget"], task)
        numbers = (
            f"{gain['transfer']} {gain['gain'] * 100:+.1f} points of {unit} vs {gain['scratch']} "
            f"(95% CI {gain['low'] * 100:+.1f} to {gain['high'] * 100:+.1f})"
        )
        if gain["verdict"] == stats.HELPS:
            lines.append(f"At {words}, transfer helps: {numbers}.")
        elif gain["verdict"] == stats.NEGATIVE:
            lines.append(f"At {words}, transfer hurts (negative transfer): {numbers}. Use {gain['scratch']}.")
        else:
            lines.append(f"At {words}, no measurable difference: {numbers}.")
    if saved:
        if saved["transfer_reaches"]:
            lines.append(
                f"Transfer reaches the best from-scratch score ({saved['target']:.3f}) with "
                f"{saved['labels_transfer']:.0f} labeled examples instead of {saved['labels_scratch']:.0f} "
                f"({saved['labels_saved']:.0%} fewer labels), in {saved['seconds_transfer']:.1f}s instead of "
                f"{saved['seconds_scratch']:.1f}s ({_time_words(saved['time_saved'])})."
            )
        else:
            lines.append(
                f"Transfer never reaches the best from-scratch score ({saved['target']:.3f}); its best is "
                f"{saved['equal_score']:.3f}, which scratch reaches with {saved['labels_scratch']:.0f} examples "
                f"vs {saved['labels_transfer']:.0f} for transfer."
            )
    for gap in auto_gaps:
        if gap["gap"] > 0.01:
            lines.append(
                f"auto ended {gap['gap'] * 100:.1f} points below the best arm at {_budget_words(gap['budget'], task)}."
            )
    skipped = [r for r in runs if "skipped" in r]
    if skipped:
        names = sorted({f"{r['arm']} at {r['budget']}" for r in skipped})
        lines.append(f"Skipped as too slow (raise --max-run-seconds to run them): {', '.join(names)}.")
    return lines


def _time_words(share: float) -> str:
    return f"{share:.0%} less time" if share >= 0 else f"{-share:.0%} more time"


def _chosen_details(result, runs, outputs, truth, target, test_y) -> dict[str, Any]:
    """Full metrics and calibration of the best arm at the largest budget (its first seed)."""
    budget = result["budgets"][-1] if "budgets" in result else runs[-1]["budget"]
    candidates = [(p["score"], arm) for arm, curve in result["curves"].items() for p in curve if p["budget"] == budget]
    if not candidates:
        return {}
    _, arm = max(candidates)
    seed = min(r["seed"] for r in runs if r["arm"] == arm and r["budget"] == budget and "score" in r)
    predicted, probabilities = outputs[(arm, budget, seed)]
    task = target.task
    if task == "regression":
        labels: Any = predicted.tolist()
    elif task == "multilabel":
        labels = [[c for c, on in zip(target.classes, row, strict=True) if on] for row in predicted]
    else:
        labels = [target.classes[i] for i in predicted]
    details: dict[str, Any] = {
        "arm": arm,
        "budget": budget,
        "seed": seed,
        "metrics": compute_metrics(task, list(test_y), labels, None if task == "regression" else target.classes),
    }
    if probabilities is not None:
        details["ece"] = expected_calibration_error(probabilities, truth, task)
        details["reliability"] = reliability_bins(probabilities, truth, task)
    return details
