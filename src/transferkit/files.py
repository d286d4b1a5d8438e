"""Writing files so that an interrupted run leaves nothing half-written (whole folders renamed into place), JSON,
and recognising the folders transferkit wrote."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n", encoding="utf-8")


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only when the block completes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(old)
            temporary.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            temporary.rename(path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def has_format(path: Path, format_name: str) -> bool:
    """Whether ``path`` is a readable JSON file whose ``"format"`` is ``format_name`` (how model folders say
    what wrote them)."""
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == format_name
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False
