"""A fitted transfer model: backbone + head + label encoding, with prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone
from transferkit.cache import embed
from transferkit.config import FitConfig
from transferkit.evaluation.calibration import fit_temperature
from transferkit.explain import Explanation, explain
from transferkit.export.graph import export_model
from transferkit.heads import LinearHead, MLPHead
from transferkit.progress import progress_bar
from transferkit.targets import TargetEncoder


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TransferModel:
    """What :func:`transferkit.fit` returns and :func:`transferkit.load` restores.

    Attributes:
        backbone: The encoder (fine-tuned in place when ``strategy == "finetune"``).
        head: Maps embeddings to scores.
        target: Label encoding for the task.
        config: The settings it was trained with.
        strategy: The strategy that produced it ("feature-extraction" or "finetune").
        finetuned: Names of backbone parameters changed by fine-tuning (saved next to the head).
        adapter: LoRA adapters merged into the backbone (``{"config", "tensors", "merged"}``); the model folder
            keeps these instead of the merged weights.
        info: Training facts (validation scores, epochs, why ``auto`` chose what it chose...).
        ngrams: A TF-IDF n-gram model blended into the scores (text classifiers; see
            :mod:`transferkit.strategies.ngrams`), or None.
        temperature: Probabilities come from ``scores / temperature`` (1 = uncalibrated; see :meth:`calibrate`).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: LinearHead | MLPHead,
        target: TargetEncoder,
        config: FitConfig,
        strategy: str,
        finetuned: list[str] | None = None,
        adapter: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        ngrams: Any = None,
    ) -> None:
        self.backbone = backbone
        self.head = head
        self.target = target
        self.config = config
        self.strategy = strategy
        self.finetuned = finetuned or []
        self.adapter = adapter
        self.info = info or {}
        self.ngrams = ngrams
        self.metrics: dict[str, Any] = {}
        self.data_info: dict[str, Any] = {}
        self.temperature = 1.0

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def classes(self) -> list[str]:
        return self.target.classes

    @property
    def modality(self) -> str:
        """What it reads: "text", "image" or "audio"."""
        return self.backbone.modality

    def embeddings(self, inputs: Sequence[Any], *, quiet: bool = True) -> np.ndarray:
        """Pooled embeddings from the (possibly fine-tuned) backbone (sparse features for TF-IDF baselines)."""
        if not isinstance(self.backbone, Backbone):
            return self.backbone.encode(inputs)
        if not self.finetuned:
            return embed(
                self.backbone, inputs, cache_dir=self.config.cache_dir, use_cache=self.config.use_cache, quiet=quiet
            )
        with progress_bar("encoding", len(inputs), quiet=quiet) as advance:
            return self.backbone.encode(inputs, progress=advance)

    def scores(self, inputs: Sequence[Any], *, quiet: bool = True) -> np.ndarray:
        """Logits (standardised values for regression): the head's, blended with the n-gram model's if any."""
        return self.blend(self.head.scores(self.embeddings(inputs, quiet=quiet)), inputs)

    def blend(self, scores: np.ndarray, inputs: Sequence[Any]) -> np.ndarray:
        """The head's ``scores`` on ``inputs`` with the n-gram model blended in (unchanged without one)."""
        return scores if self.ngrams is None else self.ngrams.blend(scores, list(inputs))

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes); per-label probabilities for multi-label."""
        if self.task == "regression":
            raise TypeError("probabilities are defined for classification only")
        scores = scores / self.temperature
        if self.task == "multilabel":
            return _sigmoid(scores)
        if scores.shape[1] == 1:
            positive = _sigmoid(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return _softmax(scores)

    def predict_from_scores(self, scores: np.ndarray) -> list[Any]:
        if self.task == "regression":
            return self.target.decode_regression(scores).tolist()
        probabilities = self.proba_from_scores(scores)
        if self.task == "multilabel":
            return [[c for c, on in zip(self.classes, row, strict=True) if on] for row in probabilities >= 0.5]
        return [self.classes[i] for i in probabilities.argmax(axis=1)]

    def predict(self, inputs: Sequence[Any], *, quiet: bool = True) -> list[Any]:
        """Labels (classification), label lists (multi-label) or numbers (regression)."""
        return self.predict_from_scores(self.scores(inputs, quiet=quiet))

    def predict_proba(self, inputs: Sequence[Any], *, quiet: bool = True) -> np.ndarray:
        return self.proba_from_scores(self.scores(inputs, quiet=quiet))

    def predict_outputs(self, inputs: Sequence[Any], *, quiet: bool = True) -> tuple[list[Any], np.ndarray | None]:
        """Predictions and probabilities (None for regression) from one pass over ``inputs``."""
        scores = self.scores(inputs, quiet=quiet)
        probabilities = None if self.task == "regression" else self.proba_from_scores(scores)
        return self.predict_from_scores(scores), probabilities

    def explain(
        self, inputs: Sequence[Any], *, target: str | None = None, method: str = "auto", steps: int | None = None
    ) -> list[Explanation]:
        """Why each input gets its prediction: word, image-region or time attributions to the predicted class
        (or ``target``); see :func:`transferkit.explain.explain`."""
        return explain(self, inputs, target=target, method=method, steps=steps)

    def calibrate(self, inputs: Sequence[Any], y: Sequence[Any], *, quiet: bool = True) -> float:
        """Temperature scaling (Guo et al. 2017, https://arxiv.org/abs/1706.04599) on held-out labeled data.

        Fits one temperature that minimises the negative log-likelihood of ``y``; predictions (argmax) do not
        change, probabilities become honest. Returns the temperature.
        """
        if self.task == "regression":
            raise TypeError("calibration applies to classifiers; this model does regression")
        self.temperature = 1.0
        self.temperature = fit_temperature(self.scores(inputs, quiet=quiet), self.target.encode(list(y)), self.task)
        return self.temperature

    def export(
        self,
        output: str | Path,
        *,
        quantize: str | None = None,
        test: tuple[Sequence[Any], Sequence[Any]] | None = None,
        overwrite: bool = False,
        quiet: bool = True,
    ) -> dict[str, Any]:
        """Write this model as one ONNX graph from raw inputs to probabilities (see
        :func:`transferkit.export.graph.export_model`); ``transferkit.load`` and the CLI read the folder
        without torch. Returns the folder's manifest."""
        return export_model(self, output, quantize=quantize, test=test, overwrite=overwrite, quiet=quiet)

    def finetuned_state(self) -> dict[str, torch.Tensor]:
        """The tensors fine-tuning moved, by name, on the CPU wherever the model is (what its folder saves)."""
        state = self.backbone.module.state_dict()
        return {name: state[name].detach().to("cpu", copy=True).contiguous() for name in self.finetuned}
