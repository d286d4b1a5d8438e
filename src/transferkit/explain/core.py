"""Why a fitted model predicted what it did: the :class:`Explanation` of one input and :func:`explain`.

:func:`explain` reads the model by duck typing (``backbone``, ``head``, ``task``, ``classes``, ``target``,
``scores``, ``predict_from_scores``, ``proba_from_scores``) instead of importing
:class:`transferkit.model.TransferModel`, which imports this package to offer ``TransferModel.explain``.

Methods:
    - Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365) through the backbone
      and the head to the explained class's score, for PyTorch text and image backbones. The attributions
      add up to ``score - baseline_score`` up to ``delta`` (Captum's convergence delta); the step count is
      doubled until ``|delta|`` is under :data:`DELTA_TOLERANCE` of that difference, and reported either way.
    - Occlusion (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901): the drop of the score when one word,
      one image patch or one short window of audio is taken away; for inference-only backbones, the TF-IDF
      model and audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.base import Backbone
from transferkit.backbones.image import TorchImageBackbone
from transferkit.backbones.static import StaticEmbeddingBackbone
from transferkit.backbones.text import TransformerTextBackbone
from transferkit.errors import TransferKitError

METHODS = ("auto", "integrated-gradients", "occlusion")
DELTA_TOLERANCE = 0.05  # |delta| at most 5% of |score - baseline_score|


class ExplainError(TransferKitError, ValueError):
    """An explanation cannot be made as asked (unknown class, method the backbone cannot run...)."""


@dataclass
class Explanation:
    """Why the model scored one input as it did, for one class (``target``).

    Attributes:
        input: The text, or the image / audio path (arrays: a short description).
        modality: "text", "image" or "audio".
        prediction: What the model predicts for the input (a label, a list of labels, or a number).
        target: The class explained (the predicted one unless asked otherwise); None for regression.
        probability: The model's probability of ``target`` (None for regression).
        score: The explained score: the target's logit (negated for the first class of a binary model), or
            the predicted value for regression.
        attributions: How much each word / image cell / audio window moved ``score`` (positive: towards the
            target). Words: one per entry of ``tokens``; images: rows of grid cells; audio: one per window.
        method: "integrated-gradients" or "occlusion".
        tokens: The words (texts only).
        cell: Side in pixels of one grid cell of the network input (images only).
        times: Start of each window in seconds (audio only); ``window`` is its length.
        baseline_score: Integrated Gradients: the score of the baseline (padding tokens, a zero image).
        delta: Integrated Gradients: ``sum(attributions) - (score - baseline_score)``; near 0 is faithful.
        steps: Integrated Gradients: interpolation steps used.
        picture: What the HTML draws under the attributions (the image crop as uint8, the audio samples);
            left out of :meth:`to_dict`.
    """

    input: str
    modality: str
    prediction: Any
    target: str | None
    probability: float | None
    score: float
    attributions: list
    method: str
    tokens: list[str] | None = None
    cell: int | None = None
    times: list[float] | None = None
    window: float | None = None
    baseline_score: float | None = None
    delta: float | None = None
    steps: int | None = None
    picture: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (everything but ``picture``)."""
        return {k: _plain(v) for k, v in self.__dict__.items() if k != "picture"}

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` parts that pushed hardest towards the target, largest first: (word, image cell as
        "(y 8-16, x 24-32)" in pixels of the network input, or window as "1.20-1.30 s", attribution)."""
        if self.tokens is not None:
            named = list(zip(self.tokens, self.attributions, strict=True))
        elif self.times is not None:
            window = self.window or 0.0
            named = [(f"{t:.2f}-{t + window:.2f} s", a) for t, a in zip(self.times, self.attributions, strict=True)]
        else:
            size = self.cell or 1
            span = (lambda i: f"{i}") if size == 1 else (lambda i: f"{i * size}-{(i + 1) * size}")
            named = [
                (f"(y {span(r)}, x {span(c)})", value)
                for r, row in enumerate(self.attributions)
                for c, value in enumerate(row)
            ]
        return sorted(named, key=lambda item: -item[1])[:k]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Target:
    """One explained output: ``score = factor * raw_scores[:, column] + offset``."""

    name: str | None
    column: int
    factor: float = 1.0
    offset: float = 0.0

    def of(self, raw: Any) -> Any:
        """The explained score of each row of head scores (numpy array or torch tensor)."""
        return raw[:, self.column] * self.factor + self.offset


def resolve_targets(
    model: Any, n_outputs: int, prediction: Any, probabilities: np.ndarray | None, target: str | None
) -> list[Target]:
    """The outputs to explain for one input: the predicted class (or ``target``), each predicted label of a
    multi-label model (the most probable one when none is predicted), or the predicted value.

    Raises:
        ExplainError: ``target`` is not one of the model's classes, or is given for a regression model.
    """
    if model.task == "regression":
        if target is not None:
            raise ExplainError("a regression model has no classes to target; leave out target (--target)")
        return [Target(None, 0, float(np.ravel(model.target.scale)[0]), float(np.ravel(model.target.mean)[0]))]
    classes = [str(c) for c in model.classes]
    if target is not None and str(target) not in classes:
        shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
        raise ExplainError(f"target {target!r} is not a class of this model; pick one of: {shown}")
    if model.task == "multilabel":
        names = [str(target)] if target is not None else [str(label) for label in prediction]
        if not names:
            names = [classes[int(np.argmax(probabilities))]]
        return [Target(name, classes.index(name)) for name in names]
    name = str(target) if target is not None else str(prediction)
    index = classes.index(name)
    if n_outputs == 1:  # binary: one logit for the second class; the first class's score is its negative
        return [Target(name, 0, 1.0 if index == 1 else -1.0)]
    return [Target(name, index)]


def choose_method(backbone: Any, method: str, *, blended: bool = False) -> str:
    """The method to run for ``backbone``: "integrated-gradients" where gradients flow through a PyTorch text
    or image backbone, else "occlusion" (also for a model with an n-gram blend: no gradient reaches n-grams)."""
    if method not in METHODS:
        raise ExplainError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if blended and method == "integrated-gradients":
        raise ExplainError(
            "integrated gradients cannot follow this model's n-gram blend (counts have no gradient); use "
            "method='occlusion' (--method occlusion), or fit with ngrams='off'"
        )
    if blended:
        return "occlusion"
    gradients = (
        isinstance(backbone, Backbone)
        and backbone.trainable
        and isinstance(backbone, TransformerTextBackbone | StaticEmbeddingBackbone | TorchImageBackbone)
    )
    if method == "auto":
        return "integrated-gradients" if gradients else "occlusion"
    if method == "integrated-gradients" and not gradients:
        raise ExplainError(
            f"integrated gradients need a PyTorch text or image backbone; {getattr(backbone, 'name', 'this model')!r} "
            "has none (inference-only engine, TF-IDF or audio); use method='occlusion' (--method occlusion)"
        )
    return method


def describe_input(item: Any) -> str:
    """How an input is named in an explanation: the text, the file path, or an array's shape."""
    if isinstance(item, str | Path):
        return str(item)
    shape = getattr(item, "shape", None) or getattr(item, "size", None)
    return f"<{type(item).__name__} {tuple(shape) if shape is not None else ''}>".replace(" >", ">")


def check_inputs(inputs: Sequence[Any], modality: str) -> list[Any]:
    """The inputs as a list; texts must be strings."""
    items = list(inputs)
    if not items:
        raise ExplainError("nothing to explain: give at least one input")
    if modality == "text":
        bad = [i for i, item in enumerate(items) if not isinstance(item, str)]
        if bad:
            raise ExplainError(f"this model reads texts, but input {bad[0] + 1} is a {type(items[bad[0]]).__name__}")
    return items
