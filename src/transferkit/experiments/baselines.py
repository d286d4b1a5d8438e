"""From-scratch baselines: what a model reaches *without* pre-trained weights, to measure transfer against.

Two sources, one list (:data:`BASELINES`):

- the cheap from-scratch models are strategies of kind "scratch" (``tfidf-lr`` for text, ``mfcc-lr`` for
  audio; :mod:`transferkit.strategies.scratch`), since ``auto`` measures them too;
- the expensive ones, which train a network, are registered here:

  - ``scratch-encoder`` (any trainable backbone): the *same* architecture as the backbone, weights
    re-initialised, every block trained. It isolates what the pre-trained weights are worth.
  - ``small-cnn`` (image): a 4-block CNN on 32 px inputs, trained from random weights with AdamW (rate 1e-3, up
    to 60 epochs, early stopping on a validation split with patience 10, the run's augmentation). The usual
    from-scratch reference for images; ``benchmarks/vision.py`` measures it against transfer.

Baselines are strong on purpose (a straw man flatters transfer).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from transferkit.backbones import Backbone, create_backbone
from transferkit.config import FitConfig
from transferkit.model import TransferModel
from transferkit.registry import Registry
from transferkit.strategies.fit import fit_model
from transferkit.strategies.registry import STRATEGIES

TRAINED: Registry[TransferModel] = Registry("baseline")


class Baselines:
    """Every baseline by name: the scratch strategies, then the networks registered in :data:`TRAINED`."""

    def names(self) -> list[str]:
        return [*STRATEGIES.names(kind="scratch"), *TRAINED.names()]

    def info(self, name: str) -> dict[str, Any]:
        """``{"modality": ..., "cost": "cheap" | "expensive"}`` ("any" modality for the encoder from scratch).

        Raises:
            TransferKitError: Unknown name (with the closest match).
        """
        if name in STRATEGIES.names(kind="scratch"):
            spec = STRATEGIES.get(name)
            return {"modality": spec.modalities[0] if len(spec.modalities) == 1 else "any", "cost": spec.cost}
        return TRAINED.info(name)

    def create(
        self, name: str, *, inputs: Sequence[Any], y: Sequence[Any], task: str, config: FitConfig,
        backbone: Backbone | None = None,
    ) -> TransferModel:  # fmt: skip
        """Train baseline ``name`` on ``inputs``/``y``."""
        if name in STRATEGIES.names(kind="scratch"):
            return fit_model(inputs, y, task=task, config=replace(config, strategy=name))
        return TRAINED.create(name, inputs=inputs, y=y, task=task, config=config, backbone=backbone)


BASELINES = Baselines()


def baselines_for(modality: str) -> list[str]:
    """Baselines that apply to ``modality``."""
    return [name for name in BASELINES.names() if BASELINES.info(name)["modality"] in (modality, "any")]


def randomized_copy(backbone: Backbone, seed: int | None = 0) -> Backbone:
    """The same architecture with freshly initialised weights (every module's ``reset_parameters``)."""
    clone = copy.deepcopy(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        for module in clone.module.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    clone.__dict__.pop("_weights_hash", None)
    clone.name = f"{backbone.name} (random init)"
    return clone


def _from_scratch(name: str, model: TransferModel) -> TransferModel:
    model.strategy = name
    model.info["scratch"] = True
    return model


@TRAINED.register("scratch-encoder", modality="any", cost="expensive")
def scratch_encoder(
    *, inputs: Sequence[Any], y: Sequence[Any], task: str, config: FitConfig, backbone: Backbone, **_: Any
) -> TransferModel:
    """Train every block of a randomly initialised copy of ``backbone`` (higher rate, no layer decay)."""
    scratch = randomized_copy(backbone, config.seed)
    settings = replace(
        config, strategy="finetune", unfreeze_layers=-1, learning_rate=3e-4, layer_decay=1.0, epochs=10, use_cache=False
    )
    return _from_scratch("scratch-encoder", fit_model(inputs, y, task=task, backbone=scratch, config=settings))


@TRAINED.register("small-cnn", modality="image", cost="expensive")
def small_cnn(*, inputs: Sequence[Any], y: Sequence[Any], task: str, config: FitConfig, **_: Any) -> TransferModel:
    settings = replace(
        config, strategy="finetune", unfreeze_layers=-1, learning_rate=1e-3, head_learning_rate=1e-3,
        layer_decay=1.0, epochs=60, patience=10, batch_size=32, use_cache=False,
    )  # fmt: skip
    backbone = create_backbone("small-cnn", seed=config.seed or 0)
    return _from_scratch("small-cnn", fit_model(inputs, y, task=task, backbone=backbone, config=settings))
