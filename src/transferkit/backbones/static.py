"""Static word-embedding encoders: a lookup table and masked mean pooling (WordLlama, GloVe).

No context, no attention: the text embedding is the mean of its tokens' vectors. They encode thousands of
texts per second on one core and are honest, cheap candidates in a transferability ranking. Fine-tuning
trains the table itself (block 1; block 0 is empty, so the default ``unfreeze_layers`` reaches it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone, ProgressCallback

Tokenizer = Callable[[list[str]], list[list[int]]]


class StaticEmbeddingBackbone(Backbone):
    """Mean of token vectors from a fixed table.

    Args:
        table: (vocabulary, dim) token vectors.
        tokenizer: Maps texts to token ids (unknown tokens already dropped).
        name: Registry name (kept in saved models).
        source: How to re-create it, ``{"registry": name}``.
        max_length: Tokens kept per text (the first ones).
        normalize: L2-normalise the pooled embedding.
    """

    modality = "text"

    def __init__(
        self,
        table: np.ndarray | torch.Tensor,
        tokenizer: Tokenizer,
        *,
        name: str,
        source: dict[str, str],
        max_length: int = 128,
        normalize: bool = False,
    ) -> None:
        weights = torch.as_tensor(np.asarray(table, dtype=np.float32))
        self._model = torch.nn.Module()
        self._model.embedding = torch.nn.Embedding.from_pretrained(weights, freeze=True)
        self._model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.max_length = int(max_length)
        self.normalize = normalize
        self.dim = int(weights.shape[1])

    @property
    def module(self) -> torch.nn.Module:
        return self._model

    def preprocessing_key(self) -> str:
        return f"static-mean-{'l2' if self.normalize else 'raw'}-{self.max_length}"

    @property
    def num_blocks(self) -> int:
        return 2  # 0: nothing (there is no separate input layer), 1: the table

    def block_parameters(self, index: int) -> list[torch.nn.Parameter]:
        return [self._model.embedding.weight] if index == 1 else []

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [ids[: self.max_length] for ids in self.tokenizer(list(texts))]

    def tokenize(self, inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        ids = self._ids(inputs)
        width = max(1, max((len(row) for row in ids), default=0))
        input_ids = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def forward_prefix(self, batch: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
        if n_blocks >= 2:
            return {"hidden": self._model.embedding(batch["input_ids"]), "attention_mask": batch["attention_mask"]}
        return dict(batch)  # block 0 holds nothing: the ids pass through

    def forward_suffix(self, state: dict[str, torch.Tensor], n_blocks: int) -> torch.Tensor:
        hidden = state["hidden"] if "hidden" in state else self._model.embedding(state["input_ids"])
        weights = state["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    @torch.inference_mode()
    def encode(
        self, inputs: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        texts = list(inputs)
        table = self._model.embedding.weight.numpy()
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(batch_size, 256)  # a lookup is cheap: larger chunks, fewer progress updates
        for start in range(0, len(texts), step):
            for row, ids in enumerate(self._ids(texts[start : start + step]), start):
                if ids:
                    output[row] = table[ids].mean(0)
            if progress is not None:
                progress(min(step, len(texts) - start))
        if self.normalize:
            norms = np.linalg.norm(output, axis=1, keepdims=True)
            output /= np.where(norms > 0, norms, 1.0)
        return output


def wordpiece_ids(tokenizer: Any) -> Tokenizer:
    """Token ids from a ``tokenizers.Tokenizer`` without special tokens or truncation (how WordLlama embeds)."""
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def ids(texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]

    ids.tokenizer = tokenizer  # what export writes as tokenizer.json
    return ids


def spacy_ids(folder) -> tuple[np.ndarray, Tokenizer]:
    """The vector table of a spaCy pipeline folder and its tokenizer mapped to table rows (by the token's
    text, else its lower case; tokens without a vector are dropped). Only the tokenizer and vocabulary load."""
    import spacy

    nlp = spacy.load(folder, exclude=spacy.util.load_config(folder / "config.cfg")["nlp"]["pipeline"])
    vectors = nlp.vocab.vectors

    def ids(texts: list[str]) -> list[list[int]]:
        result = []
        for doc in nlp.tokenizer.pipe(texts, batch_size=256):
            rows = []
            for token in doc:
                row = vectors.find(key=token.orth)
                if row < 0:
                    row = vectors.find(key=token.lower)
                if row >= 0:
                    rows.append(int(row))
            result.append(rows)
        return result

    return np.asarray(vectors.data, dtype=np.float32), ids
