"""LoRA adapters (Hu et al. 2021, https://arxiv.org/abs/2106.09685) for the strategies that train the body.

Instead of moving a block's weights, training moves two small matrices per linear layer (W + B A, rank r);
PEFT injects them in place (``peft.inject_adapter_in_model``), so the backbone's block structure, its frozen
prefix cache and its forward passes stay as they are. After training the adapters are merged into the
weights and removed: predicting costs exactly what it costs without them. The model folder keeps only the
adapter tensors and their configuration (the ``lora-adapter`` state part); loading injects them again into
the pre-trained backbone (whose weights' hash is checked first) and merges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from transferkit.backbones import Backbone
from transferkit.errors import TransferKitError
from transferkit.state import StatePart, register_state_part

try:  # an extra: pip install 'transferkit[text]'
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer
except ImportError:  # pragma: no cover - exercised only without the extra
    LoraConfig = inject_adapter_in_model = LoraLayer = None

ADAPTER = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def _require_peft() -> None:
    if LoraConfig is None:
        raise TransferKitError("adapter='lora' needs PEFT; run: pip install 'transferkit[text]' (package peft)")


def target_modules(backbone: Backbone, blocks: Sequence[int]) -> list[str]:
    """Names of the linear layers inside ``blocks`` (attention and feed-forward projections of a transformer).

    Raises:
        TransferKitError: The blocks hold no linear layer (an LSTM, convolutions, an embedding table).
    """
    module = backbone.module
    owned = {id(parameter) for block in blocks for parameter in backbone.block_parameters(block)}
    names = [
        name for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear) and id(layer.weight) in owned
    ]  # fmt: skip
    if not names:
        raise TransferKitError(
            f"backbone {backbone.name!r} has no linear layers in the blocks it would train, so LoRA has nothing to "
            "adapt; use --adapter none"
        )
    return names


def add_adapters(backbone: Backbone, targets: list[str], rank: int, seed: int | None) -> dict[str, Any]:
    """Inject rank-``rank`` adapters into ``targets`` (B starts at zero, so the model is unchanged until trained).

    Returns:
        The adapter's configuration (JSON-ready), what :func:`restore_adapters` needs.
    """
    _require_peft()
    config = {"rank": rank, "alpha": 2 * rank, "targets": targets}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        inject_adapter_in_model(_lora_config(config), backbone.module)
    return config


def adapter_parameters(backbone: Backbone) -> dict[str, torch.nn.Parameter]:
    """The adapters' trainable tensors by name."""
    return {name: p for name, p in backbone.module.named_parameters() if ".lora_" in name}


def merge_adapters(backbone: Backbone) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fold every adapter into its layer's weight and remove it.

    Returns:
        The adapter tensors (to save: on the CPU, wherever training ran) and the names of the weights that changed.
    """
    module = backbone.module
    tensors = {name: p.detach().to("cpu", copy=True).contiguous() for name, p in adapter_parameters(backbone).items()}
    merged = []
    for name, layer in list(module.named_modules()):
        if LoraLayer is not None and isinstance(layer, LoraLayer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, child, layer.get_base_layer())
            merged.append(f"{name}.weight")
    return tensors, sorted(merged)


def restore_adapters(backbone: Backbone, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> list[str]:
    """Inject saved adapters into a pre-trained backbone, load their tensors and merge them.

    Returns:
        The names of the weights that changed.

    Raises:
        KeyError: ``tensors`` do not match the configuration (a damaged folder).
    """
    _require_peft()
    inject_adapter_in_model(_lora_config(config), backbone.module)
    parameters = adapter_parameters(backbone)
    if set(parameters) != set(tensors):
        mismatch = sorted(set(tensors) ^ set(parameters))[:2]
        raise KeyError(f"adapter tensors do not match their configuration ({mismatch})")
    with torch.no_grad():
        for name, tensor in tensors.items():
            parameters[name].copy_(tensor)
    return merge_adapters(backbone)[1]


def _lora_config(config: dict[str, Any]) -> Any:
    return LoraConfig(r=config["rank"], lora_alpha=config["alpha"], target_modules=config["targets"], lora_dropout=0.0)


def _save(model: Any, folder: Path) -> None:
    save_file(model.adapter["tensors"], str(folder / ADAPTER))
    (folder / ADAPTER_CONFIG).write_text(json.dumps(model.adapter["config"], indent=2) + "\n", encoding="utf-8")


def _load(folder: Path, config: dict[str, Any], loaded: dict[str, Any]) -> None:
    adapter_config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / ADAPTER))
    merged = restore_adapters(loaded["backbone"], adapter_config, tensors)
    loaded["adapter"] = {"config": adapter_config, "tensors": tensors, "merged": merged}
    loaded["finetuned"] = sorted({*loaded["finetuned"], *merged})


# After the pre-trained backbone exists (its hash checked), before other moved tensors load on top.
register_state_part(
    StatePart(
        name="lora-adapter",
        files=(ADAPTER, ADAPTER_CONFIG),
        applies=lambda model: getattr(model, "adapter", None) is not None,
        save=_save,
        load=_load,
        order=40,
    )
)
