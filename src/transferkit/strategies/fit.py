"""Fit a :class:`~transferkit.model.TransferModel` with the configured strategy, dispatched through the registry."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.adaptation import TRAINING_METHODS
from transferkit.backbones import Backbone, create_backbone
from transferkit.config import FitConfig
from transferkit.data.media import infer_modality
from transferkit.devices import place, resolve_device
from transferkit.errors import DataError, TransferKitError
from transferkit.model import TransferModel
from transferkit.selection.choose import choose_backbone
from transferkit.strategies.adapt import (
    adapt_model,
    check_target_modality,
    check_unlabeled,
    fit_adapted,
    pretrained_copy,
)
from transferkit.strategies.calibrate import calibrate
from transferkit.strategies.common import FitRun, validation_split
from transferkit.strategies.ngrams import add_ngrams, plan_ngrams
from transferkit.strategies.registry import STRATEGIES, StrategySpec
from transferkit.targets import TargetEncoder


def fit_model(
    inputs: Sequence[Any],
    y: Sequence[Any],
    *,
    task: str,
    backbone: str | dict | Backbone | None = None,
    config: FitConfig | None = None,
    unlabeled: Sequence[Any] | None = None,
) -> TransferModel:
    """Adapt a pre-trained backbone to labeled inputs (texts, images, audio), with ``config.strategy``.

    Args:
        inputs: Training inputs.
        y: Labels (strings), label lists (multi-label) or numbers (regression).
        task: "classification", "multilabel" or "regression".
        backbone: Catalog name, folder, hub id, :class:`Backbone` or "auto" (the best-ranked installed
            candidate); default: the bundled MiniLM. Strategies that build their own features ignore it.
        config: Strategy and training settings; ``config.device`` is where the strategy trains and embeds
            (the fitted model's weights end on the CPU, as its folder saves them).
        unlabeled: Unlabeled inputs of the target domain, for domain adaptation with ``config.adapt``
            (:mod:`transferkit.strategies.adapt`; feature extraction and auto, fine-tuning with mcc or auto).

    Raises:
        DataError: Too few examples to learn from.
        TransferKitError: A strategy that cannot run on these inputs or this backbone, or ``device="cuda"`` on a
            machine without a CUDA GPU.
    """
    config = config or FitConfig()
    device = resolve_device(config.device)
    inputs, y = list(inputs), list(y)
    if len(inputs) != len(y):
        raise DataError(f"got {len(inputs)} inputs but {len(y)} labels; they must match one to one")
    if len(inputs) < 2:
        raise DataError(f"need at least 2 labeled examples, got {len(inputs)}")
    spec = STRATEGIES.get(config.strategy)
    if task not in spec.tasks:
        suitable = ", ".join(STRATEGIES.names(task=task))
        raise TransferKitError(f"strategy {spec.name!r} does not learn {task}; choose one of: {suitable}")
    check_unlabeled(spec, config, task, unlabeled)
    ranking = None
    if not spec.uses_backbone:
        backbone = None
        _check_modality(spec, infer_modality(inputs[:1]))
    elif backbone == "auto":
        backbone, ranking = choose_backbone(
            inputs, y, task=task, trainable=spec.needs_trainable, seed=config.seed, max_length=config.max_length,
            cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=config.quiet,
        )  # fmt: skip
    elif not isinstance(backbone, Backbone):
        backbone = create_backbone(backbone, max_length=config.max_length)
    elif spec.trains_body:
        backbone = copy.deepcopy(backbone)  # training moves weights: never mutate the caller's backbone
    if backbone is not None:
        _check_modality(spec, backbone.modality)
        if spec.needs_trainable:
            backbone.require_gradients()
    if unlabeled is not None:
        check_target_modality(inputs, unlabeled, backbone)
    encoder = TargetEncoder.fit(y, task)
    fit_part, valid_part = np.arange(len(y)), None
    if spec.holds_out_validation:
        fit_part, valid_part = validation_split(y, task, config)
    run = FitRun(
        inputs=inputs, target=encoder.encode(y), encoder=encoder, backbone=backbone, config=config,
        fit_part=fit_part, valid_part=valid_part, unlabeled=None if unlabeled is None else list(unlabeled),
    )  # fmt: skip
    if unlabeled is not None and spec.name == "feature-extraction":
        model = fit_adapted(run, unlabeled)  # the head fitted once, the adapted way (on the CPU, as adaptation runs)
    else:
        pretrained = pretrained_copy(spec, config, task, backbone, unlabeled)  # adapt="auto" may fine-tune again
        place(backbone, device)  # the strategy trains and embeds where the weights are
        try:
            blend = plan_ngrams(run, spec.uses_backbone)  # on the frozen embeddings, before the strategy trains
            run.ngram_weight = 0.0 if blend[0] is None else blend[0].weight
            model = spec.implementation()(run)
            add_ngrams(model, run, *blend)
        finally:
            place(backbone, "cpu")
        place(model, "cpu")  # whatever backbone the model holds: fitted models live (and are saved) on the CPU
        if unlabeled is not None and config.adapt not in TRAINING_METHODS:  # mcc adapted while it trained
            model = adapt_model(model, run, unlabeled, pretrained)
    if config.calibrate and task != "regression":
        calibrate(model, run)
    if ranking is not None:
        model.info["backbone_ranking"] = ranking
    return model


def _check_modality(spec: StrategySpec, modality: str) -> None:
    if modality not in spec.modalities:
        runs_on = ", ".join(spec.modalities)
        suitable = ", ".join(STRATEGIES.names(modality=modality))
        raise TransferKitError(
            f"strategy {spec.name!r} runs on {runs_on} inputs, not {modality}; choose one of: {suitable}"
        )
