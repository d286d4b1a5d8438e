"""On-disk embedding cache: one SQLite file per frozen encoder, keyed by the SHA-256 of each input.

A second fit on the same inputs (another head, another seed, ``auto`` trying strategies) re-encodes
nothing. SQLite gives atomic writes, so an interrupted run leaves a valid cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones import Backbone
from transferkit.progress import progress_bar
from transferkit.settings import default_cache_dir


class EmbeddingCache:
    """Embeddings of one backbone, stored in ``<cache_dir>/embeddings/<backbone key>.sqlite``."""

    def __init__(self, backbone: Backbone, cache_dir: str | Path | None = None) -> None:
        self.backbone = backbone
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = root / "embeddings" / f"{backbone.cache_key}.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)
        connection.execute("CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        return connection

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        if not self.path.exists():
            return found
        with self._connect() as connection:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in connection.execute(f"SELECT key, vector FROM embedding WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        with self._connect() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO embedding (key, vector) VALUES (?, ?)",
                [
                    (key, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                    for key, v in zip(keys, vectors, strict=True)
                ],
            )


def embed(
    backbone: Backbone,
    inputs: Sequence[Any],
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    quiet: bool = False,
    description: str = "encoding",
) -> np.ndarray:
    """Frozen embeddings of ``inputs``, read from the cache where present, encoded (with a progress bar) otherwise.

    Shape:
        (len(inputs), backbone.dim), float32.
    """
    if not use_cache:
        with progress_bar(description, len(inputs), quiet=quiet) as advance:
            return backbone.encode(inputs, batch_size=batch_size, progress=advance)
    cache = EmbeddingCache(backbone, cache_dir)
    keys = [backbone.input_key(item) for item in inputs]
    found = cache.lookup(keys)
    missing = list(dict.fromkeys(key for key in keys if key not in found))
    if missing:
        first_input = {}
        for key, item in zip(keys, inputs, strict=True):
            first_input.setdefault(key, item)
        with progress_bar(description, len(missing), quiet=quiet) as advance:
            vectors = _encode_in_chunks(
                backbone, missing, [first_input[k] for k in missing], batch_size, advance, cache
            )
        found.update(zip(missing, vectors, strict=True))
    return (
        np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
        if keys
        else np.zeros((0, backbone.dim), np.float32)
    )


def _encode_in_chunks(
    backbone: Backbone,
    keys: list[bytes],
    inputs: list[Any],
    batch_size: int,
    advance: Callable[[int], None],
    cache: EmbeddingCache,
    chunk: int = 512,
) -> np.ndarray:
    """Encode in chunks and store each, so an interrupted long encoding keeps what it finished."""
    parts = []
    for start in range(0, len(inputs), chunk):
        vectors = backbone.encode(inputs[start : start + chunk], batch_size=batch_size, progress=advance)
        cache.store(keys[start : start + chunk], vectors)
        parts.append(vectors)
    return np.concatenate(parts)
