"""A small name -> factory registry with "did you mean" errors (after timm's ``_registry.py``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from transferkit.errors import TransferKitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories and metadata.

    Args:
        kind: What the registry holds, used in error messages ("backbone", "strategy").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._info: dict[str, dict] = {}

    def register(self, name: str, **info) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers ``factory`` under ``name`` with metadata ``info``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            self._info[name] = dict(info)
            return factory

        return decorator

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._factories)

    def info(self, name: str) -> dict:
        """Metadata registered with ``name``."""
        self._check(name)
        return dict(self._info[name])

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def create(self, name: str, **kwargs) -> T:
        """Build the object registered under ``name``."""
        self._check(name)
        return self._factories[name](**kwargs)

    def _check(self, name: str) -> None:
        if name not in self._factories:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TransferKitError(f"unknown {self.kind} {name!r}; {hint}choose one of: {', '.join(self.names())}")
