"""Pre-trained encoders behind one contract (:class:`Backbone`) and one factory (:func:`create_backbone`).

The catalog (names and facts) imports eagerly and loads no model code; the contract and the factory, which
need torch, import on first use, so ``transferkit models`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transferkit.backbones.catalog import BACKBONES, DEFAULT_BACKBONES, DEFAULT_TEXT_BACKBONE, is_installed

if TYPE_CHECKING:
    from transferkit.backbones.base import Backbone, hash_state_dict
    from transferkit.backbones.factory import create_backbone

_HEAVY = {"Backbone": "base", "hash_state_dict": "base", "create_backbone": "factory"}

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONES",
    "DEFAULT_TEXT_BACKBONE",
    "Backbone",
    "create_backbone",
    "hash_state_dict",
    "is_installed",
]


def __getattr__(name: str) -> Any:
    if name not in _HEAVY:
        raise AttributeError(f"module 'transferkit.backbones' has no attribute {name!r}")
    return getattr(importlib.import_module(f"transferkit.backbones.{_HEAVY[name]}"), name)
