"""Settings declared once: each field of a settings dataclass carries its default, help text and validation.

:class:`~transferkit.config.FitConfig` and every strategy's own settings (say, auto's time budget) are
``@dataclass(kw_only=True)`` classes whose fields are made with :func:`setting`. From that one declaration
come the validation in ``__post_init__`` (:func:`validate`), the command line's options and the scikit-learn
estimators' parameters (:func:`declared`), so the three cannot drift apart.

This module imports nothing heavy: the command line reads the declarations to build its options before it
knows whether torch will be needed.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from transferkit.errors import TransferKitError


@dataclass(frozen=True)
class Declared:
    """One declared setting, as the command line and the estimators see it.

    Attributes:
        name: Field name (the keyword in Python; ``--name-with-dashes`` on the command line).
        default: Default value.
        type: The resolved type annotation (``int``, ``float | None``...).
        help: One line for ``--help`` and the docstrings (with the choices, where declared).
        cli: Whether the command line offers it.
        short: A one-letter alias for the command line ("-q"), or None.
    """

    name: str
    default: Any
    type: Any
    help: str
    cli: bool = True
    short: str | None = None


def setting(
    default: Any,
    help: str,
    *,
    check: Callable[[Any], bool] | None = None,
    rule: str = "",
    fix: str = "",
    choices: Callable[[], list[str]] | None = None,
    cli: bool = True,
    short: str | None = None,
) -> Any:
    """A dataclass field with its help and validation.

    Args:
        default: The default value.
        help: One line saying what the setting does (shown by ``--help``).
        check: Returns True for a valid value.
        rule: What a valid value is, for the error ("> 0", "in (0, 0.5)").
        fix: How to fix a bad value, appended to the error after a semicolon.
        choices: Returns the valid values (read when validating and when building help, so a registry can
            grow after the declaration); replaces ``check`` and ``rule``.
        cli: False keeps it off the command line (settings only Python callers need).
        short: A one-letter command line alias, such as "-q".
    """
    if choices is not None:
        check = lambda value: value in choices()  # noqa: E731 - read the registry at validation time
    metadata = {
        "help": help, "check": check, "rule": rule, "fix": fix, "choices": choices, "cli": cli, "short": short
    }  # fmt: skip
    return field(default=default, metadata=metadata)


def validate(instance: Any) -> None:
    """Run every field's declared check on ``instance``.

    Raises:
        TransferKitError: The first invalid value: ``"epochs must be >= 1, got 0"`` (plus the declared fix).
    """
    for item in fields(instance):
        check = item.metadata.get("check")
        value = getattr(instance, item.name)
        if check is not None and not check(value):
            choices = item.metadata.get("choices")
            rule = f"one of {', '.join(choices())}" if choices else item.metadata["rule"]
            message = f"{item.name} must be {rule}, got {value!r}"
            fix = item.metadata.get("fix")
            raise TransferKitError(f"{message}; {fix}" if fix else message)


def declared(cls: type) -> list[Declared]:
    """The declared settings of a settings dataclass, in field order, with resolved types."""
    hints = typing.get_type_hints(cls)
    result = []
    for item in fields(cls):
        if "help" not in item.metadata:
            raise TypeError(f"{cls.__name__}.{item.name} is not declared with transferkit.settings.setting()")
        default = item.default if item.default is not MISSING else None
        choices = item.metadata.get("choices")
        help_text = f"{item.metadata['help']} ({' | '.join(choices())})" if choices else item.metadata["help"]
        result.append(
            Declared(
                name=item.name,
                default=default,
                type=hints[item.name],
                help=help_text,
                cli=item.metadata["cli"],
                short=item.metadata["short"],
            )
        )
    return result


def default_cache_dir() -> Path:
    """``$TRANSFERKIT_CACHE``, else ``$XDG_CACHE_HOME/transferkit``, else ``~/.cache/transferkit``."""
    if os.environ.get("TRANSFERKIT_CACHE"):
        return Path(os.environ["TRANSFERKIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "transferkit"
