"""The service's settings: where it listens, who may call it, how much one request may ask, how it batches."""

from __future__ import annotations

import os
from dataclasses import dataclass

from transferkit.errors import TransferKitError

LOOPBACK = "127.0.0.1"


@dataclass(kw_only=True)
class ServeConfig:
    """How ``transferkit serve`` runs.

    Attributes:
        host: Address to bind; loopback unless told otherwise, so a model is never exposed by accident.
        port: TCP port (0: any free port, for tests that pass their own socket).
        api_key: When set, every route but the health checks needs ``Authorization: Bearer <api_key>``.
        max_body_bytes: Larger request bodies get 413 before they are parsed.
        max_batch: Most inputs in one request.
        max_merge: Most inputs dynamic batching gathers into one call (a larger request runs alone). On 2 CPU
            cores, calls of more than about 8 e-mail-length texts cost more per text than smaller ones
            (``benchmarks/README.md``, serving).
        max_text_chars: Longest text accepted (422 beyond).
        max_file_bytes: Largest decoded image or audio file accepted (422 beyond).
        max_wait_ms: How long the batcher waits for more requests after the first; 0 (default) never waits and
            merges only what queued while the model was busy.
        batching: False runs every request alone (the benchmark's baseline).
    """

    host: str = LOOPBACK
    port: int = 8080
    api_key: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 64
    max_merge: int = 8
    max_text_chars: int = 20_000
    max_file_bytes: int = 4 * 1024 * 1024
    max_wait_ms: float = 0.0
    batching: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise TransferKitError(f"port must be in 0..65535, got {self.port}; the default is 8080")
        for name in ("max_body_bytes", "max_batch", "max_merge", "max_text_chars", "max_file_bytes"):
            if getattr(self, name) < 1:
                raise TransferKitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise TransferKitError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}; 0 never waits")
        if self.api_key is not None and not self.api_key:
            raise TransferKitError("api_key is empty; pass a non-empty key or None for no authentication")

    @property
    def batches(self) -> bool:
        """Whether concurrent requests are merged into one call to the model."""
        return self.batching and self.max_merge > 1


def api_key_from_env(variable: str) -> str:
    """The API key held by the environment variable ``variable``.

    Raises:
        TransferKitError: The variable is unset or empty.
    """
    key = os.environ.get(variable, "")
    if not key.strip():
        raise TransferKitError(
            f"--api-key-env {variable}: the environment variable {variable} is unset or empty; "
            f"export {variable}=<key> before starting the server"
        )
    return key.strip()
