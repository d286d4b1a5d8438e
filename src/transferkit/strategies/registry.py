"""The strategy registry: each strategy declares, in its own package, what it is and what it can run on.

A strategy is a sub-package of :mod:`transferkit.strategies` (as peft's tuners are: one folder per method
with the same files):

- ``__init__.py`` declares it with :func:`register_strategy`: its name, the modalities and backbones it can
  run on, its own settings (a dataclass of :func:`transferkit.settings.setting` fields) and where its
  implementation lives. Declarations import nothing heavy, so the command line can list strategies and their
  options without loading torch;
- ``fit.py`` (or the module the declaration names) holds the implementation, a function
  ``fit(run: FitRun) -> TransferModel``.

Every sub-package is found by :func:`_discover`, so adding a strategy touches its own folder and a test, and
nothing else: ``fit_model`` dispatches through here; the command line's ``--strategy`` choices and options,
``compare``'s arms, the estimators' parameters and the tests read their names from here.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from transferkit.errors import TransferKitError
from transferkit.settings import validate

MODALITIES = ("text", "image", "audio")
TASKS = ("classification", "multilabel", "regression")
KINDS = ("transfer", "scratch", "meta")


@dataclass(frozen=True)
class StrategySpec:
    """What a strategy is, declared once.

    Attributes:
        name: The name users type (``--strategy NAME``).
        summary: One line for ``--help``, the README's table and reports.
        entry: ``"module:function"`` of the implementation, relative to ``package``.
        package: The declaring package (pass ``__name__``).
        kind: "transfer" (adapts a pre-trained backbone), "scratch" (a from-scratch model that ``auto`` and
            ``compare`` measure transfer against) or "meta" (chooses among the others: ``auto``).
        cost: "cheap" (seconds on frozen features or sparse ones) or "expensive" (trains a network).
        modalities: Input modalities it runs on.
        tasks: Tasks it learns.
        uses_backbone: False for models that build their own features (TF-IDF): no backbone is loaded.
        trains_body: It moves backbone weights, so ``fit_model`` works on a copy of the caller's backbone.
        needs_trainable: It refuses inference-only backbones (those without gradients).
        holds_out_validation: ``fit_model`` splits off a validation set (early stopping, calibration).
        settings: The dataclass of its own settings, or None.
    """

    name: str
    summary: str
    entry: str
    package: str
    kind: str = "transfer"
    cost: str = "cheap"
    modalities: tuple[str, ...] = MODALITIES
    tasks: tuple[str, ...] = TASKS
    uses_backbone: bool = True
    trains_body: bool = False
    needs_trainable: bool = False
    holds_out_validation: bool = False
    settings: type | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"strategy {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.cost not in ("cheap", "expensive"):
            raise ValueError(f"strategy {self.name!r}: cost must be 'cheap' or 'expensive', got {self.cost!r}")
        unknown = (set(self.modalities) - set(MODALITIES)) | (set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"strategy {self.name!r}: unknown modalities or tasks {sorted(unknown)}")

    def module(self) -> Any:
        """The implementation module (imported on first use: it brings torch and scikit-learn). Strategies that
        train the body also give ``training_work(run, n)``: the examples their training on ``n`` of the run's inputs
        passes through the trained blocks, and how many blocks train, from which ``auto`` predicts their cost."""
        return importlib.import_module(f"{self.package}.{self.entry.split(':')[0]}")

    def implementation(self) -> Callable[..., Any]:
        """The ``fit(run)`` function."""
        return getattr(self.module(), self.entry.split(":")[1])

    def setting_names(self) -> list[str]:
        return [] if self.settings is None else [item.name for item in fields(self.settings)]


class StrategyRegistry:
    """Name -> :class:`StrategySpec`, filled by the strategy packages when first read."""

    def __init__(self) -> None:
        self._specs: dict[str, StrategySpec] = {}
        self._discovered = False

    def register(self, spec: StrategySpec) -> StrategySpec:
        if spec.name in self._specs and self._specs[spec.name] != spec:
            raise ValueError(f"strategy {spec.name!r} is already registered")
        clashes = {
            name for other in self._specs.values() if other.name != spec.name
            for name in set(other.setting_names()) & set(spec.setting_names())
        }  # fmt: skip
        if clashes:  # settings share one namespace on the command line and in the estimators
            raise ValueError(f"strategy {spec.name!r} declares settings another strategy declares: {sorted(clashes)}")
        self._specs[spec.name] = spec
        return spec

    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True
            package = __name__.rpartition(".")[0]  # transferkit.strategies, whose folder holds this file
            for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
                if module.ispkg:
                    importlib.import_module(f"{package}.{module.name}")

    def _ordered(self) -> list[StrategySpec]:
        """Specs in a fixed order (by package, then declaration), whatever imported which package first."""
        self._discover()
        return sorted(self._specs.values(), key=lambda spec: spec.package)  # stable: declaration order kept

    def names(self, *, kind: str | None = None, modality: str | None = None, task: str | None = None) -> list[str]:
        """Registered names (by package), optionally only those of ``kind`` / for ``modality`` / ``task``."""
        return [
            spec.name
            for spec in self._ordered()
            if (kind is None or spec.kind == kind)
            and (modality is None or modality in spec.modalities)
            and (task is None or task in spec.tasks)
        ]

    def get(self, name: str) -> StrategySpec:
        """The spec of ``name``.

        Raises:
            TransferKitError: Unknown name (with the closest match and the choices).
        """
        self._discover()
        if name not in self._specs:
            close = difflib.get_close_matches(name, list(self._specs), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TransferKitError(f"unknown strategy {name!r}; {hint}choose one of: {', '.join(self.names())}")
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._specs

    def __iter__(self):
        return iter(self._ordered())


STRATEGIES = StrategyRegistry()


def register_strategy(**declaration: Any) -> StrategySpec:
    """Declare a strategy (call it from the strategy package's ``__init__.py`` with ``package=__name__``)."""
    return STRATEGIES.register(StrategySpec(**declaration))


def transfer_arms() -> list[str]:
    """The strategies ``compare`` can run as transfer arms: every registered one that is not from scratch (those
    are baselines)."""
    return [spec.name for spec in STRATEGIES if spec.kind != "scratch"]


def strategy_settings_owner(name: str) -> StrategySpec | None:
    """The strategy that declares the setting ``name``, or None."""
    return next((spec for spec in STRATEGIES if name in spec.setting_names()), None)


def strategy_settings(spec: StrategySpec, options: dict[str, Any]) -> Any:
    """``spec``'s settings dataclass built from ``options`` (its own keys only), validated; None without one."""
    if spec.settings is None:
        return None
    mine = {key: value for key, value in options.items() if key in spec.setting_names()}
    instance = spec.settings(**mine)
    validate(instance)
    return instance


def check_options(options: dict[str, Any]) -> None:
    """Every key must be a setting some strategy declares, with a valid value.

    Raises:
        TransferKitError: An unknown setting (with the closest match) or an invalid value.
    """
    known = {name: spec for spec in STRATEGIES for name in spec.setting_names()}
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TransferKitError(f"unknown setting {key!r}{hint}")
    for spec in {known[key].name: known[key] for key in options}.values():
        strategy_settings(spec, options)
