"""Frozen-feature inference through ONNX Runtime.

On a 2-core CPU, ONNX Runtime runs the bundled MiniLM encoder several times faster than PyTorch eager for
the same weights (``benchmarks/text_fewshot.py`` and ``tests/test_backbones.py`` compare the two), with
embeddings equal to within 1e-6. The graph is exported once per set of weights and kept in the cache folder
(``<cache>/onnx/<sha256 of the weights>.onnx``), written atomically.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones.base import hash_state_dict


def available() -> bool:
    """Whether onnxruntime and onnx (for the exporter) are installed."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class _LastHidden(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).last_hidden_state


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
        import onnxruntime

        self.names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in example]
        state = {k: v for k, v in module.state_dict().items() if not k.startswith("pooler.")}
        path = folder / f"{hash_state_dict(state)}-{'-'.join(self.names)}.onnx"
        if not path.exists():
            _export(module, example, self.names, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.version = weights_version(module)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].numpy().astype(np.int64) for name in self.names}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _export(module: torch.nn.Module, example: dict[str, torch.Tensor], names: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches of masking code
            torch.onnx.export(
                _LastHidden(module, names),
                tuple(example[n] for n in names),
                str(temporary),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(temporary, path)
    finally:
        module.train(was_training)
        temporary.unlink(missing_ok=True)
