"""Face verification: "are these two photos the same person?", with a threshold calibrated on your own faces.

Identification ("who is this?") needs nothing special: a folder with one sub-folder per person is
classification, ``transferkit fit people/ --backbone dlib-face``. Verification compares two face embeddings
(:class:`~transferkit.backbones.face.DlibFaceBackbone`) by Euclidean distance against a threshold. dlib's
published 0.6 was set on LFW; cameras, lighting and populations move it, so :func:`calibrate` sets it on the
user's labeled faces (a folder per person): every same-person pair and a sample of different-person pairs,
the threshold that maximises balanced accuracy (or the largest that keeps the false-accept rate at or below
``max_false_accept``), and an honest estimate of how it does on people it was *not* calibrated on (two-fold
cross-validation over people).

A verifier folder holds ``verifier.json`` only (threshold, the calibration figures, the backbone reference).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.artifacts import atomic_folder, check_output, write_json
from transferkit.backbones import Backbone, create_backbone
from transferkit.errors import DataError, ModelFolderError

VERIFIER_FILE = "verifier.json"
MAX_DIFFERENT_PER_SAME = 10  # different-person pairs sampled per same-person pair (balanced accuracy is used)


@dataclass
class FaceVerifier:
    """A face embedding and a distance threshold: closer than ``threshold`` means the same person."""

    backbone: Backbone
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def distances(self, first: Sequence[Any], second: Sequence[Any]) -> np.ndarray:
        """Euclidean distances between the embeddings of ``first[i]`` and ``second[i]``."""
        a, b = self.backbone.encode(list(first)), self.backbone.encode(list(second))
        return np.linalg.norm(a - b, axis=1)

    def verify(self, first: Any, second: Any) -> dict[str, Any]:
        """``{"same": bool, "distance": float, "threshold": float}`` for two images."""
        distance = float(self.distances([first], [second])[0])
        return {"same": distance < self.threshold, "distance": round(distance, 4), "threshold": self.threshold}

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        target = Path(path).expanduser()
        check_output(target, overwrite=overwrite)
        content = {"threshold": self.threshold, "calibration": self.calibration, "backbone": self.backbone.reference()}
        with atomic_folder(target) as folder:
            write_json(folder / VERIFIER_FILE, content)
        return target

    @classmethod
    def load(cls, path: str | Path) -> FaceVerifier:
        file = Path(path).expanduser() / VERIFIER_FILE
        if not file.is_file():
            raise ModelFolderError(f"{str(path)!r} is not a face verifier folder (no {VERIFIER_FILE}); make one with "
                                   "`transferkit faces calibrate`")  # fmt: skip
        try:
            content = json.loads(file.read_text(encoding="utf-8"))
            return cls(create_backbone(content["backbone"]), float(content["threshold"]), content["calibration"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ModelFolderError(f"{str(file)!r} is damaged ({error}); calibrate the verifier again") from None


def _pairs(people: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) and whether they are the same person: every same-person pair, plus up to
    ``MAX_DIFFERENT_PER_SAME`` times as many different-person pairs drawn at random."""
    i, j = np.triu_indices(len(people), 1)
    same = people[i] == people[j]
    different = np.flatnonzero(~same)
    keep = rng.permutation(different)[: max(1, MAX_DIFFERENT_PER_SAME * int(same.sum()))]
    chosen = np.concatenate([np.flatnonzero(same), np.sort(keep)])
    return np.stack([i[chosen], j[chosen]], axis=1), same[chosen]


def _threshold(distances: np.ndarray, same: np.ndarray, max_false_accept: float | None) -> float:
    """The threshold with the best balanced accuracy, or the largest whose false-accept rate is within bounds."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    best, best_value = float(candidates[0]), -np.inf
    for threshold in candidates:
        accepted = distances < threshold
        false_accept = accepted[~same].mean()
        if max_false_accept is not None:
            value = threshold if false_accept <= max_false_accept else -np.inf
        else:
            value = (accepted[same].mean() + (1 - false_accept)) / 2
        if value > best_value:
            best, best_value = float(threshold), value
    return best


def _rates(distances: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    accepted = distances < threshold
    true_accept, false_accept = float(accepted[same].mean()), float(accepted[~same].mean())
    return {
        "true_accept_rate": round(true_accept, 4),
        "false_accept_rate": round(false_accept, 4),
        "balanced_accuracy": round((true_accept + 1 - false_accept) / 2, 4),
    }


def calibrate(
    images: Sequence[Any],
    people: Sequence[Any],
    *,
    backbone: str | Backbone = "dlib-face",
    max_false_accept: float | None = None,
    seed: int = 0,
) -> FaceVerifier:
    """Set the verification threshold on labeled faces.

    Args:
        images: Face photos (paths, PIL images or arrays).
        people: Who is in each photo.
        backbone: The face embedding (default dlib's).
        max_false_accept: Keep the false-accept rate on the calibration pairs at or below this (for example 0.01);
            None maximises balanced accuracy.

    Raises:
        DataError: Fewer than 4 people with at least 2 photos each (no honest calibration possible).
    """
    people = np.asarray([str(p) for p in people])
    if len(people) != len(images):
        raise DataError(f"got {len(images)} images but {len(people)} person labels; they must match one to one")
    names, counts = np.unique(people, return_counts=True)
    if (counts >= 2).sum() < 4:
        raise DataError(
            f"calibration needs at least 4 people with 2 or more photos each; got {(counts >= 2).sum()} "
            f"({len(names)} people, {len(people)} photos)"
        )
    backbone = create_backbone(backbone) if isinstance(backbone, str) else backbone
    embeddings = backbone.encode(list(images))
    detected = getattr(backbone, "detected", [])
    rng = np.random.default_rng(seed)
    pairs, same = _pairs(people, rng)
    distances = np.linalg.norm(embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]], axis=1)
    threshold = _threshold(distances, same, max_false_accept)
    # Two-fold cross-validation over people: a threshold set on one half, measured on pairs of the other half.
    folds = rng.permutation(names)
    held_out = []
    for part in (folds[: len(folds) // 2], folds[len(folds) // 2 :]):
        inside = np.isin(people[pairs], part).all(axis=1)
        outside = ~np.isin(people[pairs], part).any(axis=1)
        if same[inside].any() and (~same[inside]).any() and same[outside].any() and (~same[outside]).any():
            fold_threshold = _threshold(distances[inside], same[inside], max_false_accept)
            held_out.append(_rates(distances[outside], same[outside], fold_threshold))
    calibration = {
        "people": len(names),
        "photos": len(people),
        "faces_detected": int(sum(detected)) if detected else None,
        "same_pairs": int(same.sum()),
        "different_pairs": int((~same).sum()),
        "max_false_accept": max_false_accept,
        "on_calibration_pairs": _rates(distances, same, threshold),
        "on_unseen_people": {key: round(float(np.mean([fold[key] for fold in held_out])), 4) for key in held_out[0]}
        if held_out
        else None,
        "same_distance_median": round(float(np.median(distances[same])), 4),
        "different_distance_median": round(float(np.median(distances[~same])), 4),
    }
    return FaceVerifier(backbone=backbone, threshold=round(threshold, 4), calibration=calibration)
