"""Read a built-in data set (the files under ``datasets/data``; ``NOTICE`` says where each comes from)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from transferkit.datasets.catalog import BUILTIN_DATASETS


def load_builtin(name: str) -> pd.DataFrame:
    """The built-in data set ``name`` as a DataFrame."""
    entry = BUILTIN_DATASETS[name]
    with resources.as_file(resources.files("transferkit.datasets") / "data" / entry["file"]) as path:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
