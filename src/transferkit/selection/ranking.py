"""Rank candidate backbones for a labeled data set by transferability, before any training.

Each candidate embeds the inputs (texts, images or audio clips) once, through the embedding cache, then every
score runs on the frozen features in milliseconds to seconds. Rescoring on subsamples of the examples says
how stable the top pick is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.backbones import BACKBONES, create_backbone
from transferkit.backbones.catalog import is_installed
from transferkit.cache import embed
from transferkit.data.split import train_test_indices
from transferkit.errors import BackboneError, TransferKitError
from transferkit.progress import say
from transferkit.selection.scores import SCORES, score_names
from transferkit.targets import TargetEncoder

DEFAULT_SCORE = "logme"
ALL_SCORES = score_names(needs="features")  # what rank can compute: every score that reads features
FAST_SCORES = score_names(needs="features", fast=True)  # what rank reports by default
DEFAULT_MAX_EXAMPLES = 1000
STABILITY_ROUNDS = 100
# Half-samples: for a mean, a half-sample drawn without replacement has variance sigma^2 / m * (1 - m / n),
# which at m = n / 2 is sigma^2 / n, the sampling variance of the full-data estimate; so half-samples show
# as much sampling noise as the bootstrap does, without its duplicated examples (which LogME rewards:
# identical rows with identical labels look noise-free). Stability selection (Meinshausen and Buhlmann,
# JRSS-B 2010) subsamples halves for the same reason. Larger fractions understate the noise (80%: a quarter).
SUBSAMPLE_FRACTION = 0.5


def score_features(
    features: np.ndarray, y: np.ndarray, task: str, names: Sequence[str], seed: int = 0
) -> dict[str, float | None]:
    """The named transferability scores of ``features`` for targets ``y`` (None where a score does not apply).

    Classification targets are class indices; regression targets are numbers (n,) or (n, k); multi-label
    targets are 0/1 columns, scored by LogME as k regression targets (what LogME does with one-hot labels).
    Every score is looked up in :data:`~transferkit.selection.scores.SCORES`.

    Raises:
        TransferKitError: A name is not a score that reads features.
    """
    _check_score_names(names)
    features = np.asarray(features, dtype=np.float64)
    return {name: _finite(SCORES[name](features, y, task, seed=seed)) for name in names}


def _check_score_names(names: Sequence[str]) -> None:
    """Refuse names that are not scores of frozen features, naming the ones that are.

    Raises:
        TransferKitError: A name is unknown, or names a score that needs a source classifier's probabilities.
    """
    usable = ", ".join(ALL_SCORES)
    for name in names:
        if name not in SCORES:
            raise TransferKitError(f"unknown score {name!r}; choose from {usable}")
        if SCORES[name].needs != "features":
            raise TransferKitError(
                f"score {name!r} needs a source classifier's probabilities, not features, so it cannot rank "
                f"backbones here (call transferkit.selection.{SCORES[name].function.__name__} on them); "
                f"choose from {usable}"
            )


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def candidates_for(modality: str) -> list[str]:
    """Installed catalog backbones of ``modality`` that take part in rankings (toy backbones do not)."""
    return [
        name
        for name in BACKBONES.names()
        if BACKBONES.info(name).get("modality") == modality
        and BACKBONES.info(name).get("rank", True)
        and is_installed(name)
    ]


def rank(
    inputs: Sequence[Any],
    y: Sequence[Any],
    *,
    task: str,
    candidates: Sequence[str] | None = None,
    score: str = DEFAULT_SCORE,
    scores: Sequence[str] = FAST_SCORES,
    max_examples: int | None = DEFAULT_MAX_EXAMPLES,
    rounds: int = STABILITY_ROUNDS,
    seed: int = 0,
    max_length: int = 128,
    cache_dir: str | None = None,
    use_cache: bool = True,
    quiet: bool = False,
    modality: str = "text",
) -> dict[str, Any]:
    """Rank candidate backbones for ``inputs``/``y`` by a transferability score.

    Args:
        inputs: Training inputs of one modality: texts, or image / audio file paths or arrays.
        y: Their labels (as for :func:`~transferkit.strategies.fit.fit_model`).
        task: "classification", "multilabel" or "regression".
        candidates: Backbone names, folders or hub ids; default: every installed candidate of ``modality``.
        score: The score that orders the ranking (and the stability); it is always computed.
        scores: Further scores to report next to it (names in :data:`ALL_SCORES`).
        max_examples: Rank on a stratified sample of this many examples (None: all); embedding is the cost.
        rounds: Subsamples (half the examples each, drawn without replacement, stratified by class) rescored
            for the stability of the top pick (0 to skip).
        seed: Seed of the sampling, the subsamples and the seeded scores.
        max_length: Tokens kept per text (text backbones only).
        cache_dir: Embedding cache folder (default: the user cache).
        use_cache: Read and write the embedding cache.
        quiet: No progress lines.
        modality: "text", "image" or "audio": the candidates' modality when ``candidates`` is None.

    Returns:
        JSON-ready: ``ranking`` (best first: name, dim, scores, seconds), ``skipped`` (name and why),
        ``stability`` (the share of subsamples each candidate tops), ``top`` and ``summary``.

    Raises:
        TransferKitError: An unknown score, or one that does not read features.
        BackboneError: No candidate is installed, or none could embed the inputs.
    """
    names = list(dict.fromkeys([score, *scores]))
    _check_score_names(names)  # before the slow embedding
    candidates = list(candidates) if candidates else candidates_for(modality)
    if not candidates:
        install = f"pip install 'transferkit[{modality}]'"
        raise BackboneError(f"no {modality} candidate backbone is installed; run: {install}")
    inputs, y = list(inputs), list(y)
    if max_examples is not None and len(inputs) > max_examples:
        keep, _ = train_test_indices(y, test_size=1 - max_examples / len(inputs), task=task, seed=seed)
        inputs, y = [inputs[i] for i in keep], [y[i] for i in keep]
    target = TargetEncoder.fit(y, task).encode(y)
    features: dict[str, np.ndarray] = {}
    rows, skipped = [], []
    for index, name in enumerate(candidates, 1):
        say(f"[{index}/{len(candidates)}] {name}: embedding {len(inputs)} examples", quiet=quiet)
        start = time.perf_counter()
        try:
            backbone = create_backbone(name, max_length=max_length)
            matrix = embed(backbone, inputs, cache_dir=cache_dir, use_cache=use_cache, quiet=quiet)
        except TransferKitError as error:
            skipped.append({"name": name, "reason": str(error)})
            continue
        embedded = time.perf_counter()
        values = score_features(matrix, target, task, names, seed=seed)
        features[name] = matrix
        rows.append(
            {
                "name": name,
                "dim": int(matrix.shape[1]),
                "scores": values,
                "seconds_embed": round(embedded - start, 3),
                "seconds_score": round(time.perf_counter() - embedded, 3),
            }
        )
    if not rows:
        raise BackboneError(f"no candidate could be embedded: {skipped[0]['reason']}")
    rows.sort(key=lambda row: -np.inf if row["scores"][score] is None else row["scores"][score], reverse=True)
    for position, row in enumerate(rows, 1):
        row["rank"] = position
    stability = _stability(features, target, task, score, rounds, seed) if rounds and len(rows) > 1 else {}
    top = rows[0]["name"]
    result = {
        "task": task,
        "n": len(inputs),
        "score": score,
        "ranking": rows,
        "skipped": skipped,
        "rounds": rounds,
        "stability": stability,
        "top": top,
    }
    result["summary"] = _summary(result)
    return result


def _stability(
    features: dict[str, np.ndarray], target: np.ndarray, task: str, score: str, rounds: int, seed: int
) -> dict[str, float]:
    """Share of ``rounds`` subsamples of the examples in which each candidate has the best ``score``.

    Every candidate is scored on the same subsamples (see :func:`_subsample`), drawn without replacement: a
    bootstrap resample repeats about a third of its examples, and LogME reads repeated rows with identical
    labels as noise-free data, which favours some feature sets over the ranking on the real data.
    """
    rng = np.random.default_rng(seed)
    wins = dict.fromkeys(features, 0)
    for _ in range(rounds):
        rows = _subsample(target, task, rng)
        values = {name: score_features(matrix[rows], target[rows], task, [score], seed)[score] for name, matrix in
                  features.items()}  # fmt: skip
        valid = {name: value for name, value in values.items() if value is not None}
        if valid:
            wins[max(valid, key=valid.get)] += 1
    total = max(sum(wins.values()), 1)
    return {name: round(count / total, 3) for name, count in sorted(wins.items(), key=lambda kv: -kv[1])}


def _subsample(
    target: np.ndarray, task: str, rng: np.random.Generator, fraction: float = SUBSAMPLE_FRACTION
) -> np.ndarray:
    """Sorted row indices of ``fraction`` of the examples, drawn without replacement.

    For classification each class is subsampled on its own, so every class stays present; a class keeps two
    examples where it has them, so that scores needing two per class (the linear probe's folds) stay defined.
    """
    n = len(target)
    if task != "classification":
        return np.sort(rng.choice(n, size=max(2, round(n * fraction)), replace=False))
    parts = []
    for label in np.unique(target):
        members = np.flatnonzero(target == label)
        size = max(min(len(members), 2), round(len(members) * fraction))
        parts.append(rng.choice(members, size=size, replace=False))
    return np.sort(np.concatenate(parts))


def _summary(result: dict[str, Any]) -> str:
    top, score = result["top"], result["score"]
    text = f"{top} ranks first by {score} of {len(result['ranking'])} candidates on {result['n']} examples"
    share = result["stability"].get(top)
    if share is not None:
        firmness = "a firm pick" if share >= 0.9 else "a close call" if share < 0.6 else "a likely pick"
        subsamples = f"{result['rounds']} subsamples ({SUBSAMPLE_FRACTION:.0%} of the examples each)"
        text += f"; it stays on top in {share:.0%} of {subsamples}: {firmness}"
    probe = {row["name"]: row["scores"].get("linear-probe") for row in result["ranking"]}
    probe = {name: value for name, value in probe.items() if value is not None}
    if score != "linear-probe" and probe and max(probe, key=probe.get) != top and top in probe:
        best = max(probe, key=probe.get)
        text += (
            f"; the slower linear probe prefers {best} ({probe[best]:.3f} vs {probe[top]:.3f}): when the two "
            "disagree, trust the probe (its picks had the lower regret in benchmarks/ranking.py)"
        )
    return text
