"""The backbone contract every pre-trained encoder follows.

A backbone turns raw inputs (texts, images, audio clips) into fixed-size embeddings. Frozen use
goes through :meth:`Backbone.encode`; fine-tuning goes through the torch side of the contract
(:meth:`Backbone.tokenize`, :meth:`Backbone.forward_prefix`, :meth:`Backbone.forward_suffix`), which splits
the network at a block boundary so that the frozen lower blocks run once and are cached.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from transferkit.backbones.preprocess import read_file_bytes
from transferkit.errors import BackboneError

ProgressCallback = Callable[[int], None]


class Backbone(abc.ABC):
    """A pre-trained encoder with a frozen-feature path and a fine-tuning path.

    Attributes:
        name: Registry name, folder path or hub id the backbone was created from.
        dim: Size of the pooled embedding.
    """

    modality: ClassVar[str] = "text"
    trainable: ClassVar[bool] = True  # False for inference-only engines: fine-tuning refuses them
    name: str
    source: dict[str, str]
    dim: int

    @abc.abstractmethod
    def encode(
        self, inputs: Sequence[Any], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Frozen embeddings of ``inputs``.

        Shape:
            (n_inputs, dim), float32.
        """

    def reference(self) -> dict[str, Any]:
        """JSON that :func:`transferkit.backbones.create_backbone` turns back into this backbone: its name,
        ``source``, the options that change its embeddings, its size and the SHA-256 of its weights."""
        options = {key: getattr(self, key) for key in ("max_length", "normalize") if hasattr(self, key)}
        return {
            "name": self.name,
            "source": self.source,
            **options,
            "dim": self.dim,
            "weights_sha256": self.weights_hash,
        }

    @property
    @abc.abstractmethod
    def module(self) -> torch.nn.Module:
        """The torch module holding every weight (for fine-tuning and hashing)."""

    @property
    @abc.abstractmethod
    def num_blocks(self) -> int:
        """Number of trainable blocks, counting the input embedding as block 0."""

    @abc.abstractmethod
    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        """Parameters of block ``index`` (0 = input embedding, ``num_blocks - 1`` = top block)."""

    def require_gradients(self) -> None:
        """Raise a one-line error saying what to use instead when this backbone cannot be trained."""
        if not self.trainable:
            raise BackboneError(f"backbone {self.name!r} cannot be fine-tuned; use --strategy feature-extraction")

    @abc.abstractmethod
    def tokenize(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Model-ready tensors for a batch of raw inputs."""

    @abc.abstractmethod
    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        """Run the lowest ``n_blocks`` blocks; the result feeds :meth:`forward_suffix`."""

    @abc.abstractmethod
    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        """Run the blocks above ``n_blocks`` and pool: (batch, dim) embeddings."""

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Full forward pass with gradients where parameters require them."""
        return self.forward_suffix(self.forward_prefix(batch, 0), 0)

    def input_key(self, item: Any) -> bytes:
        """Identity of one input in the embedding cache: the SHA-256 of a text (image and audio backbones hash
        the content, so an edited file is re-encoded)."""
        return hashlib.sha256(item.encode("utf-8")).digest()

    @property
    def cache_key(self) -> str:
        """Identity of the frozen encoder for the embedding cache: weights plus preprocessing."""
        return f"{self.weights_hash}-{self.preprocessing_key()}"

    def preprocessing_key(self) -> str:
        """Settings that change embeddings without changing weights (max length, pooling...)."""
        return ""

    def hashed_state(self) -> dict[str, torch.Tensor]:
        """The tensors that determine the embeddings (what :attr:`weights_hash` covers)."""
        return self.module.state_dict()

    def compute_weights_hash(self) -> str:
        """SHA-256 of the tensors of :meth:`hashed_state`, by name, in sorted order."""
        return hash_state_dict(self.hashed_state())

    @property
    def weights_hash(self) -> str:
        """:meth:`compute_weights_hash`, computed once (pinned before fine-tuning moves the weights)."""
        cached = getattr(self, "_weights_hash", None)
        if cached is None:
            cached = self._weights_hash = self.compute_weights_hash()
        return cached


def content_key(item: Any, kind: str = "file") -> bytes:
    """SHA-256 of a media input's content for the embedding cache: a file's bytes, an array's dtype, shape and
    values, or a PIL image's mode, size and pixels (so an edited file is re-encoded)."""
    digest = hashlib.sha256()
    if isinstance(item, (str, Path)):
        digest.update(b"file:" + read_file_bytes(item, kind))
    elif isinstance(item, np.ndarray):
        digest.update(f"array:{item.dtype}:{item.shape}:".encode() + np.ascontiguousarray(item).tobytes())
    else:
        digest.update(f"pil:{item.mode}:{item.size}:".encode() + item.tobytes())
    return digest.digest()


def hash_state_dict(state: dict[str, torch.Tensor]) -> str:
    """Stable SHA-256 of a state dict's names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class InferenceOnlyBackbone(Backbone):
    """A backbone whose engine has no gradients (a quantised C engine, an ONNX graph): frozen features,
    ranking and ``auto`` work; fine-tuning fails with a one-line error naming what to use instead.

    Subclasses set ``_path`` (the weights file, hashed for the cache and saved models) and ``engine``.
    """

    trainable = False
    engine = "an inference engine"
    _path: Path
    _empty = torch.nn.Module()

    def __deepcopy__(self, memo: dict) -> InferenceOnlyBackbone:
        return self  # nothing in it can change: there are no trainable weights

    @property
    def module(self) -> torch.nn.Module:
        return self._empty

    def compute_weights_hash(self) -> str:
        """SHA-256 of the weights file (there are no torch tensors to hash)."""
        digest = hashlib.sha256()
        with open(self._path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    @property
    def num_blocks(self) -> int:
        return 0

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        return []

    def _no_gradients(self) -> BackboneError:
        return BackboneError(
            f"backbone {self.name!r} runs in {self.engine} and cannot be fine-tuned; "
            f"use --strategy feature-extraction (or auto), or a fine-tunable {self.modality} backbone "
            f"such as {_FINE_TUNABLE.get(self.modality, 'minilm')}"
        )

    def require_gradients(self) -> None:
        raise self._no_gradients()

    def tokenize(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        raise self._no_gradients()

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        raise self._no_gradients()

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        raise self._no_gradients()


_FINE_TUNABLE = {"text": "minilm", "image": "efficientnet-lite0"}
