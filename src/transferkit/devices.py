"""Where torch work runs: ``auto`` | ``cpu`` | ``cuda`` resolved against this machine, and weights and batches
moved there.

Training and embedding follow the backbone's weights: a strategy reads the device from them
(:func:`module_device`) and moves each batch there (:func:`to_device`), so code written once runs on a CPU or a
GPU. Torch is imported inside the functions that need it: an exported model predicts without torch, on the CPU.
"""

from __future__ import annotations

import itertools
from typing import Any

from transferkit.errors import TransferKitError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is refused.

    Raises:
        TransferKitError: An unknown device, or ``cuda`` on a machine without a CUDA GPU.
    """
    if device not in DEVICES:
        raise TransferKitError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    try:
        import torch
    except ImportError:  # an exported model predicts without torch, on the CPU
        torch = None
    available = torch is not None and torch.cuda.is_available()
    if device == "cuda" and not available:
        raise TransferKitError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu or auto")
    return "cuda" if device == "auto" and available else ("cpu" if device == "auto" else device)


def module_device(module: Any) -> Any:
    """The ``torch.device`` of a module's first parameter (or buffer); the CPU for a module without tensors."""
    import torch

    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def to_device(value: Any, device: Any) -> Any:
    """A tensor, or a dict, list or tuple of them, on ``device`` (tensors already there are not copied)."""
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_device(item, device) for item in value)
    return value.to(device) if hasattr(value, "to") else value


def place(model: Any, device: Any) -> None:
    """Move a model's (or a backbone's) torch weights to ``device``. Frozen features then run in PyTorch there:
    ONNX Runtime, used on CPUs, stays on the CPU. Exported models and engines without torch weights stay as they
    are."""
    backbone = getattr(model, "backbone", model)
    module = getattr(backbone, "module", None)
    if module is None or not list(module.parameters()):
        return
    module.to(device)
