"""What every strategy that trains the body shares: which blocks train, their optimiser groups (discriminative
learning rates), LoRA adapters instead of the weights when asked, the frozen prefix run once and cached, and
afterwards the list of tensors that moved (what a model folder saves).

Training runs where the backbone's weights are (``fit_model`` places them on the configured device): batches are
collated on the CPU and moved there by :func:`embedder`; the frozen prefix cache stays on the CPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.devices import module_device, to_device
from transferkit.strategies.lora import add_adapters, merge_adapters, target_modules

PREFIX_CACHE_LIMIT_BYTES = 3 * 1024**3


def trainable_blocks(backbone: Backbone, unfreeze_layers: int) -> range:
    """Indices of the blocks that train: the top ``unfreeze_layers`` (all with -1).

    Block 0 is the input embedding; it trains only with -1, since its table is large and rarely worth moving
    on small data.
    """
    if unfreeze_layers == -1:
        return range(0, backbone.num_blocks)
    return range(max(1, backbone.num_blocks - unfreeze_layers), backbone.num_blocks)


@dataclass
class Body:
    """The trainable part of a backbone for one training run.

    Attributes:
        blocks: The blocks that train.
        groups: AdamW parameter groups, one per block, with discriminative learning rates.
        trainable: The tensors that train, by name (the block weights, or their LoRA adapters).
        buffers: The module's buffers before training (batch-norm statistics), to tell which moved.
        device: Where the backbone's weights are, so where training runs (heads and labels go there too).
        adapter: The LoRA configuration, when adapters train instead of the weights.
    """

    blocks: range
    groups: list[dict[str, Any]]
    trainable: dict[str, torch.nn.Parameter]
    buffers: dict[str, torch.Tensor]
    device: torch.device
    adapter: dict[str, Any] | None = None

    @property
    def first(self) -> int:
        return self.blocks.start


def open_body(
    backbone: Backbone, config: FitConfig, *, weight_decay: float, layers: int | None = None,
    learning_rate: float | None = None,
) -> Body:  # fmt: skip
    """Freeze ``backbone`` but for its top ``layers`` blocks (default ``config.unfreeze_layers``) or their LoRA
    adapters, the top block at ``learning_rate`` (default ``config.learning_rate``) and each block below at
    ``layer_decay`` times the rate of the block above."""
    module = backbone.module
    layers = config.unfreeze_layers if layers is None else layers
    learning_rate = config.learning_rate if learning_rate is None else learning_rate
    blocks = trainable_blocks(backbone, layers)
    backbone.weights_hash  # noqa: B018 - pin the hash of the *pre-trained* weights before they move
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    adapter = None
    if config.adapter == "lora":
        adapter = add_adapters(backbone, target_modules(backbone, blocks), config.lora_rank, config.seed)
    names = {id(p): n for n, p in module.named_parameters()}
    groups, trainable = [], {}
    for block in blocks:
        params = [p for p in backbone.block_parameters(block) if adapter is None or ".lora_" in names[id(p)]]
        for parameter in params:
            parameter.requires_grad_(True)
            trainable[names[id(parameter)]] = parameter
        rate = learning_rate * config.layer_decay ** (backbone.num_blocks - 1 - block)
        if params:
            groups.append({"params": params, "lr": rate, "weight_decay": weight_decay})
    buffers = {name: tensor.detach().clone() for name, tensor in module.named_buffers()}
    return Body(blocks=blocks, groups=groups, trainable=trainable, buffers=buffers, device=module_device(module),
                adapter=adapter)  # fmt: skip


def close_body(backbone: Backbone, body: Body) -> tuple[list[str], dict[str, Any] | None]:
    """Freeze everything again; fold LoRA adapters into the weights.

    Returns:
        The names of the backbone tensors that moved (parameters and buffers), and the adapter to save
        (``{"config", "tensors", "merged"}``) or None.
    """
    module = backbone.module
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    adapter = None
    if body.adapter is not None:
        tensors, merged = merge_adapters(backbone)
        adapter = {"config": body.adapter, "tensors": tensors, "merged": merged}
        changed = merged
    else:
        changed = sorted(body.trainable)
    moved = [name for name, tensor in module.named_buffers() if not torch.equal(tensor, body.buffers[name])]
    return sorted(changed) + sorted(moved), adapter


@torch.no_grad()
def interpolate(body: Body, pretrained: dict[str, torch.Tensor], share: float) -> None:
    """Keep ``share`` of the change training made, the rest going back to the pre-trained weights (weight-space
    ensembling, WiSE-FT: Wortsman et al. 2022, https://arxiv.org/abs/2109.01903). With LoRA the change is
    ``B @ A``, so scaling ``B`` by ``share`` is the same interpolation."""
    for name, parameter in body.trainable.items():
        if body.adapter is not None:
            if ".lora_B" in name:
                parameter.mul_(share)
        else:
            parameter.copy_(pretrained[name] + share * (parameter - pretrained[name]))


def caches_prefix(backbone: Backbone, inputs: Sequence[Any], body: Body, config: FitConfig) -> bool:
    """Whether the frozen blocks below the trained ones run once, their outputs kept in memory (when there are
    such blocks and their outputs fit in ``PREFIX_CACHE_LIMIT_BYTES``)."""
    approx_bytes = sum(min(len(x), config.max_length * 6) for x in inputs) / 4 * backbone.dim * 4
    return body.first > 0 and approx_bytes < PREFIX_CACHE_LIMIT_BYTES


def examples_of(backbone: Backbone, inputs: Sequence[Any], first: int, batch_size: int, cache: bool) -> list[dict]:
    """Per-example tensors on the CPU (sequences trimmed to their length): token ids or pixels, or frozen-prefix
    outputs when ``cache`` (computed where the backbone is). Inputs without an ``attention_mask`` (images) are
    fixed-size and kept whole."""
    device = module_device(backbone.module)
    examples: list[dict] = [{} for _ in inputs]
    order = np.argsort([len(x) if isinstance(x, str) else 0 for x in inputs], kind="stable")
    for start in range(0, len(inputs), batch_size * 4):
        index = order[start : start + batch_size * 4]
        batch = backbone.tokenize([inputs[i] for i in index])
        if cache:
            with torch.no_grad():
                batch = to_device(backbone.forward_prefix(to_device(batch, device), first), "cpu")
        mask = batch.get("attention_mask")
        lengths = mask.sum(1).tolist() if mask is not None else [None] * len(index)  # v[row, :None] is v[row]
        for row, (i, length) in enumerate(zip(index, lengths, strict=True)):
            examples[i] = {k: v[row, :length].clone() for k, v in batch.items() if v.ndim >= 2}
    return examples


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    return {
        key: torch.nn.utils.rnn.pad_sequence([example[key] for example in examples], batch_first=True)
        for key in examples[0]
    }


def embedder(backbone: Backbone, first: int, cache: bool):
    """``embed(batch)``: pooled embeddings of a collated batch through the trained blocks (the frozen ones run
    in evaluation mode, exactly as when their outputs are cached), computed where the backbone is."""
    module = backbone.module
    device = module_device(module)

    def embed(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = to_device(batch, device)
        if cache:
            return backbone.forward_suffix(batch, first)
        if first == 0:
            return backbone.forward(batch)
        training = module.training
        module.eval()
        with torch.no_grad():
            state = backbone.forward_prefix(batch, first)
        module.train(training)
        return backbone.forward_suffix(state, first)

    return embed


def restore(backbone: Backbone, original: dict[str, torch.Tensor]) -> None:
    """Put pre-trained values back into parameters (and buffers) that training moved."""
    state = backbone.module.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, tensor in original.items():
            state[name].copy_(tensor)
