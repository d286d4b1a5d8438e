"""Shared fixtures: small real data (slices of the bundled SpamAssassin and AFINN sets), toy and real backbones.

Every test gets its own embedding cache (``TRANSFERKIT_CACHE``) so tests never see each other's cache.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transferkit.backbones import create_backbone
from transferkit.datasets import load_builtin


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def spam_frame() -> pd.DataFrame:
    """60 real e-mails (30 spam, 30 ham), cut to 300 characters to keep encoding fast."""
    frame = load_builtin("spam-assassin")
    frame = frame.groupby("label").sample(30, random_state=0)
    frame = frame.assign(text=frame["text"].str.slice(0, 300))[["text", "label"]]
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def spam_groups_frame() -> pd.DataFrame:
    """60 real e-mails in three classes (easy ham, hard ham, spam), cut to 300 characters."""
    frame = load_builtin("spam-assassin")
    frame = frame.assign(category=frame["group"].str.replace(r"-\d$", "", regex=True))
    frame = frame.groupby("category").sample(20, random_state=0)
    frame = frame.assign(text=frame["text"].str.slice(0, 300))[["text", "category"]]
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def afinn_frame() -> pd.DataFrame:
    """90 real AFINN words with their valence (-5..5) and sentiment, plus a 3-class strength label."""
    frame = load_builtin("afinn").sample(90, random_state=0).reset_index(drop=True)
    frame["strength"] = pd.cut(frame["valence"].abs(), [0, 1, 2, 5], labels=["weak", "medium", "strong"]).astype(str)
    return frame


@pytest.fixture(scope="session")
def multilabel_frame(afinn_frame) -> pd.DataFrame:
    """Multi-label rows: each word tagged with its sentiment and, for |valence| >= 3, 'intense'."""
    tags = [
        [sentiment] + (["intense"] if abs(valence) >= 3 else [])
        for sentiment, valence in zip(afinn_frame["sentiment"], afinn_frame["valence"], strict=True)
    ]
    return pd.DataFrame({"text": afinn_frame["text"], "tags": ["|".join(t) for t in tags]})


@pytest.fixture(scope="session")
def spam_csv(tmp_path_factory, spam_frame) -> str:
    path = tmp_path_factory.mktemp("data") / "spam.csv"
    spam_frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="session")
def toy_backbone():
    return create_backbone("toy-text")


@pytest.fixture(scope="session")
def minilm():
    return create_backbone("minilm")


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
