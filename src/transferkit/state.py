"""What a saved model folder holds beyond its config: the state parts, each declared by the code that adds it.

A model folder's ``config.json`` lists the parts it holds (``"state": ["head", "backbone-delta"]``). Each part
is registered here by the module that owns it, with the files it writes and how to save and load it: the
head and the fine-tuned backbone tensors by :mod:`transferkit.artifacts`, the TF-IDF featuriser by the
from-scratch strategy, and so on for adapters or adaptation statistics. Loading refuses a part nobody
registered and a tensor file no listed part owns, so a folder is never half understood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StatePart:
    """One kind of saved state.

    Attributes:
        name: The name listed in ``config.json``.
        files: The files it writes in the model folder.
        applies: Whether a model has this part (decides what :func:`~transferkit.artifacts.save_model` writes).
        save: ``save(model, folder)`` writes the files.
        load: ``load(folder, config, loaded)`` reads them into ``loaded``, a dict with the ``backbone`` (None
            until created), ``head`` and ``finetuned`` (names of moved backbone tensors) being assembled.
        order: Load order, smaller first (a part that provides the backbone loads before one that changes it).
    """

    name: str
    files: tuple[str, ...]
    applies: Callable[[Any], bool]
    save: Callable[[Any, Path], None]
    load: Callable[[Path, dict[str, Any], dict[str, Any]], None]
    order: int = 50


STATE_PARTS: dict[str, StatePart] = {}


def register_state_part(part: StatePart) -> StatePart:
    """Declare a state part (once per name)."""
    if part.name in STATE_PARTS and STATE_PARTS[part.name] != part:
        raise ValueError(f"state part {part.name!r} is already registered")
    STATE_PARTS[part.name] = part
    return part
