"""transferkit: transfer learning for small labeled data sets.

Public API::

    import transferkit as tk
    model = tk.fit("tickets.csv", strategy="auto", output="models/tickets")
    model = tk.load("models/tickets")
    model.predict(["my order never arrived"])
"""

from transferkit.api import compare, evaluate, fit, load, save
from transferkit.backbones import BACKBONES, Backbone, create_backbone
from transferkit.config import FitConfig
from transferkit.errors import TransferKitError
from transferkit.estimators import TransferClassifier, TransferRegressor
from transferkit.model import TransferModel

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "Backbone",
    "FitConfig",
    "TransferClassifier",
    "TransferKitError",
    "TransferModel",
    "TransferRegressor",
    "__version__",
    "compare",
    "create_backbone",
    "evaluate",
    "fit",
    "load",
    "save",
]
