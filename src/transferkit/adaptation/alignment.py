"""Feature alignment between a labeled source domain and an unlabeled target domain (pure numpy).

Both methods return an :class:`Alignment`: a map for the source features the head trains on, and an affine
map ``X @ matrix + offset`` for the target features it predicts on. Because the target map is affine, it folds
into a linear head's weights (:func:`transferkit.adaptation.heads.compose`), so a saved model reads raw
target embeddings and needs no extra step at prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Alignment:
    """How to map features before the head.

    Attributes:
        source_matrix, source_offset: Source features become ``X @ source_matrix + source_offset``.
        target_matrix, target_offset: Target features become ``X @ target_matrix + target_offset`` (None: as is).
    """

    source_matrix: np.ndarray
    source_offset: np.ndarray
    target_matrix: np.ndarray | None = None
    target_offset: np.ndarray | None = None

    def source(self, features: np.ndarray) -> np.ndarray:
        return features @ self.source_matrix + self.source_offset

    def target(self, features: np.ndarray) -> np.ndarray:
        if self.target_matrix is None:
            return features
        return features @ self.target_matrix + self.target_offset


def _covariance_power(features: np.ndarray, regularisation: float, power: float) -> np.ndarray:
    """``(C + r I) ** power`` for the covariance ``C`` of ``features`` and ``r`` = ``regularisation`` times its mean
    variance (scale-free: on standardised features this is CORAL's ``+ I``). From the thin SVD of the centred
    features, exact and cheap when there are fewer examples than dimensions (1,280-d image features)."""
    centred = features - features.mean(0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    variances = singular**2 / max(len(features) - 1, 1)
    ridge = regularisation * max(float(variances.sum()) / features.shape[1], 1e-12)
    # Along the axes: (v + r) ** p; elsewhere r ** p.
    return (axes.T * ((variances + ridge) ** power - ridge**power)) @ axes + ridge**power * np.eye(features.shape[1])


def coral(source: np.ndarray, target: np.ndarray, *, regularisation: float = 1.0) -> Alignment:
    """CORAL: whiten the source features and re-colour them with the target covariance (and move them to the
    target mean), so that a head trained on them fits the target's second-order statistics.

    Sun, Feng & Saenko 2016, "Return of Frustratingly Easy Domain Adaptation", https://arxiv.org/abs/1511.05547.

    Args:
        source: Source features.
        target: Unlabeled target features.
        regularisation: Added to both covariances' diagonals, in units of their mean variance (1 as in the paper).

    Shape:
        source (n_s, d), target (n_t, d) -> source map (d, d); the target map is the identity.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    whiten = _covariance_power(source, regularisation, -0.5)
    recolour = _covariance_power(target, regularisation, 0.5)
    matrix = whiten @ recolour
    offset = target.mean(0) - source.mean(0) @ matrix
    return Alignment(matrix.astype(np.float32), offset.astype(np.float32))


def _principal_axes(features: np.ndarray, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(0)
    _, _, axes = np.linalg.svd(features - mean, full_matrices=False)
    return mean, axes[:dimensions].T


def subspace_dimensions(source: np.ndarray, target: np.ndarray, limit: int = 64) -> int:
    """A subspace size both domains can support: at most ``limit``, the feature size and each sample size - 1."""
    return max(1, min(limit, source.shape[1], len(source) - 1, len(target) - 1))


def subspace_alignment(source: np.ndarray, target: np.ndarray, *, dimensions: int | None = None) -> Alignment:
    """Subspace alignment: project each domain on its own principal axes, and rotate the source axes onto the
    target ones (``M = P_s' P_t``); the head reads source features in ``P_s M`` and target ones in ``P_t``.

    Fernando, Habrard, Sebban & Tuytelaars 2013, "Unsupervised Visual Domain Adaptation Using Subspace
    Alignment", https://openaccess.thecvf.com/content_iccv_2013/papers/Fernando_Unsupervised_Visual_Domain_2013_ICCV_paper.pdf.

    Args:
        source: Source features.
        target: Unlabeled target features.
        dimensions: Subspace size (default: :func:`subspace_dimensions`).

    Shape:
        source (n_s, d), target (n_t, d) -> source map (d, k), target map (d, k).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    k = dimensions or subspace_dimensions(source, target)
    source_mean, source_axes = _principal_axes(source, k)
    target_mean, target_axes = _principal_axes(target, k)
    rotation = source_axes.T @ target_axes
    source_matrix = source_axes @ rotation
    return Alignment(
        source_matrix.astype(np.float32),
        (-source_mean @ source_matrix).astype(np.float32),
        target_axes.astype(np.float32),
        (-target_mean @ target_axes).astype(np.float32),
    )
