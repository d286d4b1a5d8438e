"""Explain a fitted model's predictions: pick the method for its backbone, the outputs to explain for each
input, and run it (:func:`explain`); choose a few held-out examples for the fit report
(:func:`explain_examples`)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

import numpy as np

from transferkit.backbones.static import StaticEmbeddingBackbone
from transferkit.explain import media, text
from transferkit.explain.core import (
    ExplainError,
    Explanation,
    Target,
    check_inputs,
    choose_method,
    describe_input,
    resolve_targets,
)


def explain(
    model: Any,
    inputs: Sequence[Any],
    *,
    target: str | None = None,
    method: str = "auto",
    steps: int | None = None,
    max_steps: int | None = None,
) -> list[Explanation]:
    """Why ``model`` predicts what it does for each input.

    Args:
        model: A fitted :class:`~transferkit.model.TransferModel`.
        inputs: Texts, or images / audio clips (paths or arrays), as for ``model.predict``.
        target: The class to explain (default: the predicted one; every predicted label for multi-label).
        method: "auto" (Integrated Gradients for PyTorch text and image backbones, occlusion otherwise),
            "integrated-gradients" or "occlusion".
        steps: Integrated Gradients steps; None starts at 32 and doubles until the attributions add up to
            the score difference within 5% (or the cap is reached; ``delta`` reports what is left).
        max_steps: The cap on that doubling (default 512 for texts, 64 for images).

    Returns:
        One :class:`Explanation` per input, in order (multi-label: one per explained label of each input).

    Raises:
        ExplainError: An unknown ``target`` or ``method``, or a method the backbone cannot run.
    """
    backbone = model.backbone
    modality = getattr(backbone, "modality", "text")
    chosen = choose_method(backbone, method, blended=getattr(model, "ngrams", None) is not None)
    items = check_inputs(inputs, modality)
    if steps is not None and steps < 1:
        raise ExplainError(f"steps must be at least 1, got {steps}; leave it out to choose automatically")
    raw = np.asarray(model.scores(items))
    predictions = model.predict_from_scores(raw)
    probabilities = None if model.task == "regression" else model.proba_from_scores(raw)
    explanations = []
    for row, item in enumerate(items):
        row_probabilities = None if probabilities is None else probabilities[row]
        for explained in resolve_targets(model, raw.shape[1], predictions[row], row_probabilities, target):
            fields = _run(model, item, explained, chosen, modality, (steps, max_steps))
            probability = None
            if row_probabilities is not None:
                probability = round(float(row_probabilities[[str(c) for c in model.classes].index(explained.name)]), 6)
            explanations.append(
                Explanation(
                    input=describe_input(item),
                    modality=modality,
                    prediction=predictions[row],
                    target=explained.name,
                    probability=probability,
                    method=chosen,
                    **fields,
                )
            )
    return explanations


def _run(
    model: Any, item: Any, target: Target, method: str, modality: str, steps: tuple[int | None, int | None]
) -> dict[str, Any]:
    backbone, head = model.backbone, model.head
    if modality == "text":
        if method == "occlusion":
            return text.occlusion(model, item, target)
        if isinstance(backbone, StaticEmbeddingBackbone):
            return text.static_gradients(backbone, head, item, target, *steps)
        return text.transformer_gradients(backbone, head, item, target, *steps)
    if modality == "image":
        if method == "occlusion":
            return media.image_occlusion(backbone, head, item, target)
        return media.image_gradients(backbone, head, item, target, *steps)
    return media.audio_occlusion(backbone, head, item, target)


def explain_examples(
    model: Any,
    inputs: Sequence[Any],
    y: Sequence[Any],
    *,
    right: int = 2,
    wrong: int = 2,
    pool: int = 40,
    seconds: float = 4.0,
) -> list[tuple[Any, Explanation]]:
    """A few held-out texts explained for the fit report: up to ``right`` correct and ``wrong`` mistaken
    predictions among the first ``pool`` test examples (the shortest ones: they cost least and read quickest),
    as (true label, explanation) pairs.

    Texts only (image and audio explanations cost seconds each). Integrated Gradients run with 16 steps here
    (the delta shown says how well they add up); without captum, occlusion is used. Examples are explained
    right, wrong, right, wrong... until ``seconds`` have passed, so a slow machine gets fewer, never a slow fit.
    """
    if getattr(model.backbone, "modality", "text") != "text" or not inputs:
        return []
    chosen = list(range(min(pool, len(inputs))))
    predictions = model.predict([inputs[i] for i in chosen])
    key = (lambda v: sorted(map(str, v))) if model.task == "multilabel" else str
    if model.task == "regression":  # "right": the half of the pool closest to the truth
        errors = [abs(float(p) - float(y[i])) for p, i in zip(predictions, chosen, strict=True)]
        cut = float(np.median(errors))
        hits = [e <= cut for e in errors]
    else:
        hits = [key(p) == key(y[i]) for p, i in zip(predictions, chosen, strict=True)]
    shortest = sorted(zip(chosen, hits, strict=True), key=lambda pair: len(str(inputs[pair[0]])))
    good, bad = [i for i, hit in shortest if hit][:right], [i for i, hit in shortest if not hit][:wrong]
    order = [i for pair in zip_longest(good, bad) for i in pair if i is not None]
    method = "auto" if importlib.util.find_spec("captum") is not None else "occlusion"
    start = time.perf_counter()
    examples = []
    for index in order:
        if examples and time.perf_counter() - start > seconds:
            break
        examples += [(y[index], e) for e in explain(model, [inputs[index]], method=method, max_steps=16)]
    return examples
