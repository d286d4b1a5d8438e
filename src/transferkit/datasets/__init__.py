"""Small real data sets that ship with transferkit, usable by name wherever a data file is expected."""

from __future__ import annotations

from transferkit.datasets.catalog import BUILTIN_DATASETS

__all__ = ["BUILTIN_DATASETS", "load_builtin"]


def __getattr__(name: str):
    # load_builtin needs pandas; the table above is all `transferkit datasets` reads, so it comes first.
    if name == "load_builtin":
        from transferkit.datasets.builtin import load_builtin

        return load_builtin
    raise AttributeError(f"module 'transferkit.datasets' has no attribute {name!r}")
