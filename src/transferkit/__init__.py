"""transferkit: transfer learning for small labeled data sets.

Public API::

    import transferkit as tk
    model = tk.fit("tickets.csv", strategy="auto", output="models/tickets")
    model = tk.load("models/tickets")
    model.predict(["my order never arrived"])

The names below are imported on first use (PEP 562), so that ``import transferkit.cli`` answers ``--help``
without loading torch; ``from transferkit import fit`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transferkit._version import __version__

_EXPORTS = {
    "compare": "transferkit.api",
    "embed": "transferkit.api",
    "evaluate": "transferkit.api",
    "fit": "transferkit.api",
    "load": "transferkit.api",
    "predict": "transferkit.api",
    "rank": "transferkit.api",
    "save": "transferkit.api",
    "BACKBONES": "transferkit.backbones",
    "Backbone": "transferkit.backbones",
    "create_backbone": "transferkit.backbones",
    "FitConfig": "transferkit.config",
    "TransferKitError": "transferkit.errors",
    "TransferClassifier": "transferkit.estimators",
    "TransferRegressor": "transferkit.estimators",
    "TransferModel": "transferkit.model",
    "STRATEGIES": "transferkit.strategies",
}

__all__ = [*sorted(_EXPORTS), "__version__"]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors (__all__ exports them)
    from transferkit.api import compare, embed, evaluate, fit, load, predict, rank, save  # noqa: F401
    from transferkit.backbones import BACKBONES, Backbone, create_backbone  # noqa: F401
    from transferkit.config import FitConfig  # noqa: F401
    from transferkit.errors import TransferKitError  # noqa: F401
    from transferkit.estimators import TransferClassifier, TransferRegressor  # noqa: F401
    from transferkit.model import TransferModel  # noqa: F401
    from transferkit.strategies import STRATEGIES  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
