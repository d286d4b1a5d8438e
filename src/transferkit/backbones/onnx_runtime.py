"""Frozen-feature inference through ONNX Runtime.

On a 2-core CPU, ONNX Runtime runs the bundled MiniLM and EfficientNet-Lite0 encoders several times faster
than PyTorch eager for the same weights (``benchmarks/text_fewshot.py``, ``benchmarks/vision.py``), with
embeddings equal to within 1e-5 (``tests/test_backbones.py``, ``tests/test_image.py``). The graph is exported
once per set of weights and kept in the cache folder (``<cache>/onnx/<sha256 of the weights>.onnx``), written
atomically.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import hash_state_dict
from transferkit.devices import module_device
from transferkit.errors import BackboneError
from transferkit.settings import default_cache_dir


def available() -> bool:
    """Whether onnxruntime and onnx (for the exporter) are installed."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class _LastHidden(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).last_hidden_state


class OnnxFrozen:
    """Mixin for torch backbones that encode frozen features through ONNX Runtime when it pays.

    The host sets ``runtime`` ("auto", "onnx" or "torch"), ``_model`` (the torch module) and ``_onnx`` (None
    at first) and calls :meth:`_onnx_engine`, which returns the session wrapper for the *current* weights (re-exported
    after fine-tuning moved them) or None to run PyTorch (always on a GPU).
    """

    runtime: str
    name: str
    _model: torch.nn.Module
    _onnx: Any

    def __deepcopy__(self, memo: dict) -> Any:
        """Copies share nothing mutable; the ONNX session (not copyable) is rebuilt lazily by the copy."""
        import copy

        clone = copy.copy(self)
        clone._model = copy.deepcopy(self._model, memo)
        clone._onnx = None
        if "_engine" in clone.__dict__:  # a chosen engine (images, GE2E); text backbones have an _engine method
            clone._engine = None
        return clone

    @property
    def module(self) -> torch.nn.Module:
        return self._model

    def _set_runtime(self, runtime: str) -> None:
        if runtime not in ("auto", "onnx", "torch"):
            raise BackboneError(f"runtime must be 'auto', 'onnx' or 'torch', got {runtime!r}")
        self.runtime, self._onnx = runtime, None

    def _onnx_engine(self, n_inputs: int, minimum: int, build: Callable[[], Any]) -> Any:
        if self.runtime == "torch" or (self.runtime == "auto" and not available()):
            return None
        if module_device(self._model).type != "cpu":  # placed on a GPU: PyTorch runs there, ONNX Runtime on CPUs
            return None
        current = self._onnx is not None and self._onnx.version == weights_version(self._model)
        if not current and self.runtime == "auto" and n_inputs < minimum:
            return None  # exporting (seconds, a file in the cache) does not pay off for a few inputs
        if not current:
            try:
                self._onnx = build()
            except Exception as error:  # any export failure falls back to PyTorch in "auto"
                if self.runtime == "onnx":
                    raise BackboneError(f"could not run {self.name!r} with ONNX Runtime: {error}") from error
                self.runtime = "torch"
                return None
        return self._onnx


class _Forward(torch.nn.Module):
    """``backbone.forward({key: x})`` as a module: the graph exported for a backbone's frozen features."""

    def __init__(self, backbone: Any, key: str) -> None:
        super().__init__()
        self.weights = backbone.module  # registered, so the exporter sees the weights as parameters
        self.backbone, self.key = [backbone], key  # a list: the backbone itself is not a module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone[0].forward({self.key: x})


class ExportedForward:
    """A backbone's whole forward pass (one input tensor -> pooled features) in ONNX Runtime, for the weights it
    has now: exported once per set of weights to ``<cache>/onnx/<sha256>-<tag>.onnx``.

    Args:
        backbone: A torch backbone whose ``forward`` takes ``{key: tensor}``.
        key: The input's name; example: an input of the right shape; axes: its dynamic axes.
    """

    def __init__(self, backbone: Any, key: str, example: torch.Tensor, axes: dict[int, str], tag: str) -> None:
        module = backbone.module
        path = cache_folder() / f"{hash_state_dict(module.state_dict())}-{tag}.onnx"
        if not path.exists():
            dynamic = {key: axes, "features": {0: "batch"}}
            export(_Forward(backbone, key), (example,), [key], dynamic, path, output="features")
        self.key, self.session, self.version = key, session(path), weights_version(module)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.key: x})[0]


def cache_folder() -> Path:
    """Where exported graphs are kept: ``<transferkit cache>/onnx``."""
    return default_cache_dir() / "onnx"


def weights_version(module: torch.nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter is modified in place (fine-tuning, load_state_dict), at no cost."""
    return tuple(parameter._version for parameter in module.parameters())


class OnnxEncoder:
    """Runs a transformers encoder's ``last_hidden_state`` through ONNX Runtime.

    Args:
        module: The encoder (exported as it is now).
        example: A tokenized batch naming the inputs (input_ids, attention_mask, token_type_ids...).
        folder: Where exported graphs are kept.
    """

    def __init__(self, module: torch.nn.Module, example: dict[str, torch.Tensor], folder: Path) -> None:
        self.names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in example]
        state = {k: v for k, v in module.state_dict().items() if not k.startswith("pooler.")}
        path = folder / f"{hash_state_dict(state)}-{'-'.join(self.names)}.onnx"
        if not path.exists():
            axes = {name: {0: "batch", 1: "sequence"} for name in [*self.names, "last_hidden_state"]}
            export(_LastHidden(module, self.names), tuple(example[n] for n in self.names), self.names, axes, path)
        self.session = session(path)
        self.version = weights_version(module)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].numpy().astype(np.int64) for name in self.names}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def session(path: Path):
    """An ONNX Runtime CPU session on ``path`` using as many threads as torch does."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export(
    module: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    names: list[str],
    axes: dict[str, dict[int, str]],
    path: Path,
    output: str = "last_hidden_state",
    opset: int = 17,
) -> None:
    """Export ``module`` (in eval mode, gradients off) to ``path`` atomically: a crash leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches
            torch.onnx.export(
                module,
                inputs,
                str(temporary),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        os.replace(temporary, path)
    finally:
        module.train(was_training)
        temporary.unlink(missing_ok=True)
