"""AdaBN: batch-norm statistics re-estimated on a domain's own inputs (Li, Wang, Shi, Liu & Hou 2016,
"Revisiting Batch Normalization For Practical Domain Adaptation", https://arxiv.org/abs/1603.04779).

The weights stay as they are; only each batch-norm layer's running mean and variance change, so that the
activations of the domain the statistics came from are normalised as the pre-training data's were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone
from transferkit.progress import progress_bar

BATCH_NORM = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def batch_norm_layers(backbone: Backbone) -> dict[str, torch.nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers of ``backbone``'s module that track running statistics, by name (none for
    inference-only backbones and for transformers, which use layer norm)."""
    return {
        name: layer
        for name, layer in backbone.module.named_modules()
        if isinstance(layer, BATCH_NORM) and layer.track_running_stats
    }


def statistics_names(backbone: Backbone) -> list[str]:
    """The state-dict names of the buffers :func:`adabn` changes."""
    return sorted(
        f"{name}.{buffer}"
        for name in batch_norm_layers(backbone)
        for buffer in ("running_mean", "running_var", "num_batches_tracked")
    )


@torch.no_grad()
def adabn(
    backbone: Backbone,
    inputs: Sequence[Any],
    *,
    batch_size: int = 32,
    max_inputs: int = 256,
    seed: int = 0,
    quiet: bool = True,
) -> list[str]:
    """Replace the running statistics of ``backbone``'s batch-norm layers (in place) by those of ``inputs``.

    Every layer averages its batch statistics over up to ``max_inputs`` inputs (a seeded sample: a few hundred
    give stable means and variances, and each costs a forward pass); nothing else runs in training mode (no
    dropout or stochastic depth).

    Args:
        backbone: A torch backbone with batch norm (modified in place: pass a copy).
        inputs: The domain's inputs (raw: texts, images, audio).
        batch_size: Inputs per forward pass (each layer's statistics are averaged over the batches).
        max_inputs: At most this many inputs are used.
        seed: Seed of the sample.
        quiet: No progress bar.

    Returns:
        The names of the buffers that changed (:func:`statistics_names`).
    """
    layers = batch_norm_layers(backbone)
    if not layers:
        return []
    items = list(inputs)
    if len(items) > max_inputs:
        chosen = np.sort(np.random.default_rng(seed).choice(len(items), max_inputs, replace=False))
        items = [items[i] for i in chosen]
    module = backbone.module
    module.eval()
    saved_momentum = {}
    for name, layer in layers.items():
        layer.reset_running_stats()
        saved_momentum[name], layer.momentum = layer.momentum, None  # None: a cumulative average of the batches
        layer.train()
    try:
        with progress_bar("re-estimating batch norm", len(items), quiet=quiet) as advance:
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                backbone.forward(backbone.tokenize(chunk))
                advance(len(chunk))
    finally:
        for name, layer in layers.items():
            layer.momentum = saved_momentum[name]
        module.eval()
    # A frozen-feature engine exported for the old statistics is stale (text backbones' _engine is a method).
    for attribute in ("_onnx", "_engine"):
        if attribute in vars(backbone):
            setattr(backbone, attribute, None)
    return statistics_names(backbone)
