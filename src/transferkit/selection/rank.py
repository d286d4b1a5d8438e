"""Rank candidate backbones for a labeled data set by transferability, before any training.

Each candidate embeds the texts once (through the embedding cache), then every score runs on the frozen
features in milliseconds to seconds. A bootstrap over examples says how stable the top pick is.
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
from transferkit.selection.scores import h_score, leep, linear_probe_score, logme

DEFAULT_SCORE = "logme"
FAST_SCORES = ("logme", "hscore", "nleep")
ALL_SCORES = (*FAST_SCORES, "linear-probe")
DEFAULT_MAX_EXAMPLES = 1000
STABILITY_ROUNDS = 100


def nleep(features: np.ndarray, y: np.ndarray, *, components_per_class: int = 5, seed: int = 0) -> float:
    """N-LEEP: LEEP with a Gaussian mixture standing in for the source classifier.

    Li et al., "Ranking Neural Checkpoints", CVPR 2021: features reduced by PCA to 80% of their variance, a
    Gaussian mixture with ``components_per_class`` x classes components fitted to them, and its posteriors
    used as the source-label probabilities of LEEP (Nguyen et al., ICML 2020). For backbones without a
    source classifier, such as sentence encoders.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    classes = np.unique(y)
    reduced = PCA(n_components=0.8, svd_solver="full", random_state=seed).fit_transform(features)
    components = components_per_class * len(classes)
    while components >= len(features) and components > len(classes):
        components -= len(classes)
    mixture = GaussianMixture(components, covariance_type="diag", reg_covar=1e-4, random_state=seed)
    return leep(mixture.fit(reduced).predict_proba(reduced), y)


def score_features(features: np.ndarray, y: np.ndarray, task: str, names: Sequence[str], seed: int = 0) -> dict:
    """The named transferability scores of ``features`` for targets ``y`` (None where a score does not apply).

    Classification targets are class indices; regression targets are numbers (n,) or (n, k); multi-label
    targets are 0/1 columns, scored by LogME as k regression targets (what LogME does with one-hot labels).
    """
    features = np.asarray(features, dtype=np.float64)
    regression = task != "classification"
    scorers = {
        "logme": lambda: logme(features, y, regression=regression),
        "hscore": lambda: None if regression else h_score(features, y),
        "nleep": lambda: None if regression else nleep(features, y, seed=seed),
        "linear-probe": lambda: (
            None if task == "multilabel" else linear_probe_score(features, y, regression=regression, seed=seed)
        ),
    }
    unknown = [name for name in names if name not in scorers]
    if unknown:
        raise TransferKitError(f"unknown score {unknown[0]!r}; choose from {', '.join(scorers)}")
    return {name: _finite(scorers[name]()) for name in names}


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
    texts: Sequence[str],
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
    """Rank candidate backbones for ``texts``/``y`` by a transferability score.

    Args:
        texts, y: Labeled training data (labels as for :func:`~transferkit.strategies.fit.fit_model`).
        task: "classification", "multilabel" or "regression".
        candidates: Backbone names, folders or hub ids; default: every installed candidate of ``modality``.
        score: The score that orders the ranking (and the bootstrap); it is always computed.
        scores: Further scores to report next to it.
        max_examples: Rank on a stratified sample of this many examples (None: all); embedding is the cost.
        rounds: Bootstrap resamples of the examples for the stability of the top pick (0 to skip).

    Returns:
        JSON-ready: ``ranking`` (best first: name, dim, scores, seconds), ``skipped`` (name and why),
        ``stability`` (how often each candidate tops a bootstrap resample), ``top`` and ``summary``.
    """
    from transferkit.targets import TargetEncoder

    names = list(dict.fromkeys([score, *scores]))
    unknown = [name for name in names if name not in ALL_SCORES]
    if unknown:
        raise TransferKitError(f"unknown score {unknown[0]!r}; choose from {', '.join(ALL_SCORES)}")
    candidates = list(candidates) if candidates else candidates_for(modality)
    if not candidates:
        install = f"pip install 'transferkit[{modality}]'"
        raise BackboneError(f"no {modality} candidate backbone is installed; run: {install}")
    texts, y = list(texts), list(y)
    if max_examples is not None and len(texts) > max_examples:
        keep, _ = train_test_indices(y, test_size=1 - max_examples / len(texts), task=task, seed=seed)
        texts, y = [texts[i] for i in keep], [y[i] for i in keep]
    target = TargetEncoder.fit(y, task).encode(y)
    features: dict[str, np.ndarray] = {}
    rows, skipped = [], []
    for index, name in enumerate(candidates, 1):
        say(f"[{index}/{len(candidates)}] {name}: embedding {len(texts)} texts", quiet=quiet)
        start = time.perf_counter()
        try:
            backbone = create_backbone(name, max_length=max_length)
            matrix = embed(backbone, texts, cache_dir=cache_dir, use_cache=use_cache, quiet=quiet)
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
        "n": len(texts),
        "score": score,
        "ranking": rows,
        "skipped": skipped,
        "rounds": rounds,
        "stability": stability,
        "top": top,
    }
    result["summary"] = _summary(result)
    return result


def _stability(features: dict[str, np.ndarray], target: np.ndarray, task: str, score: str, rounds: int, seed: int):
    """Share of bootstrap resamples (of examples) in which each candidate has the best ``score``."""
    rng = np.random.default_rng(seed)
    n = len(target)
    wins = dict.fromkeys(features, 0)
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        if task == "classification" and len(np.unique(target[rows])) < 2:
            continue
        values = {name: score_features(matrix[rows], target[rows], task, [score], seed)[score] for name, matrix in
                  features.items()}  # fmt: skip
        valid = {name: value for name, value in values.items() if value is not None}
        if valid:
            wins[max(valid, key=valid.get)] += 1
    total = max(sum(wins.values()), 1)
    return {name: round(count / total, 3) for name, count in sorted(wins.items(), key=lambda kv: -kv[1])}


def _summary(result: dict[str, Any]) -> str:
    top, score = result["top"], result["score"]
    text = f"{top} ranks first by {score} of {len(result['ranking'])} candidates on {result['n']} examples"
    share = result["stability"].get(top)
    if share is not None:
        firmness = "a firm pick" if share >= 0.9 else "a close call" if share < 0.6 else "a likely pick"
        text += f"; it stays on top in {share:.0%} of {result['rounds']} bootstrap resamples ({firmness})"
    probe = {row["name"]: row["scores"].get("linear-probe") for row in result["ranking"]}
    probe = {name: value for name, value in probe.items() if value is not None}
    if score != "linear-probe" and probe and max(probe, key=probe.get) != top and top in probe:
        best = max(probe, key=probe.get)
        text += (
            f"; the slower linear probe prefers {best} ({probe[best]:.3f} vs {probe[top]:.3f}): when the two "
            "disagree, trust the probe (its picks had the lower regret in benchmarks/ranking.py)"
        )
    return text
