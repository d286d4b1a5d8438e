"""How a backbone is adapted: one sub-package per strategy, each declared in the registry.

Importing this package is light (the declarations only); :func:`transferkit.strategies.fit.fit_model` runs
a strategy. See :mod:`transferkit.strategies.registry` for how to add one.
"""

from transferkit.strategies.registry import STRATEGIES, StrategySpec, register_strategy

__all__ = ["STRATEGIES", "StrategySpec", "register_strategy"]
