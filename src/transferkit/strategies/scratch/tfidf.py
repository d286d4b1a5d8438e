"""TF-IDF features: the featuriser of the ``tfidf-lr`` model, saved as idf weights + vocabulary (no pickle)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer

from transferkit.state import StatePart, register_state_part

MAX_FEATURES = 50_000  # per analyzer: keeps model folders small (vocabulary JSON of a few MB)
FEATURES = "features.safetensors"
VOCABULARY = "vocabulary.json"


class TfidfFeatures:
    """TF-IDF features of word 1-2 grams and character 2-5 grams (within word boundaries), concatenated.

    Stands where a backbone stands in a :class:`~transferkit.model.TransferModel`: ``encode`` gives the
    (sparse) features the linear head reads.
    """

    kind = "tfidf"
    modality = "text"
    name = "tfidf"

    def __init__(self, max_features: int = MAX_FEATURES) -> None:
        self.max_features = max_features
        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)
        self.char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=max_features
        )

    def fit(self, texts: Sequence[str]) -> TfidfFeatures:
        self.word.fit(texts)
        self.char.fit(texts)
        return self

    def fit_transform(self, texts: Sequence[str]):
        """:meth:`fit` and :meth:`encode` on the same texts, analysing each text once (the same matrix, in about
        half the time: the n-gram analysis is most of TF-IDF's cost)."""
        return hstack([self.word.fit_transform(texts), self.char.fit_transform(texts)]).tocsr()

    def encode(self, texts: Sequence[str], **_: Any):
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    @property
    def dim(self) -> int:
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def reference(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "max_features": self.max_features}

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "word_idf": torch.from_numpy(self.word.idf_.astype(np.float32)),
            "char_idf": torch.from_numpy(self.char.idf_.astype(np.float32)),
        }

    def vocabulary(self) -> dict[str, list[str]]:
        """Terms in column order (JSON-ready; no pickle)."""
        return {
            part: sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
            for part, vectorizer in (("word", self.word), ("char", self.char))
        }

    @classmethod
    def from_state(
        cls, reference: dict[str, Any], state: dict[str, torch.Tensor], vocabulary: dict[str, list[str]]
    ) -> TfidfFeatures:
        features = cls(max_features=reference.get("max_features", MAX_FEATURES))
        for part, vectorizer in (("word", features.word), ("char", features.char)):
            terms = vocabulary[part]
            idf = state[f"{part}_idf"].numpy().astype(np.float64)
            if len(terms) != len(idf):
                raise ValueError(f"{part} vocabulary has {len(terms)} terms but {len(idf)} idf weights")
            vectorizer.vocabulary_ = {term: i for i, term in enumerate(terms)}
            vectorizer.idf_ = idf
        return features


def _save(model: Any, folder: Path) -> None:
    save_file(model.backbone.state(), str(folder / FEATURES))
    (folder / VOCABULARY).write_text(json.dumps(model.backbone.vocabulary()) + "\n", encoding="utf-8")


def _load(folder: Path, config: dict[str, Any], loaded: dict[str, Any]) -> None:
    vocabulary = json.loads((folder / VOCABULARY).read_text(encoding="utf-8"))
    loaded["backbone"] = TfidfFeatures.from_state(config["backbone"], load_file(str(folder / FEATURES)), vocabulary)


# The featuriser stands in the backbone's place, so it loads first.
register_state_part(
    StatePart(
        name="tfidf-features",
        files=(FEATURES, VOCABULARY),
        applies=lambda model: isinstance(model.backbone, TfidfFeatures),
        save=_save,
        load=_load,
        order=0,
    )
)
