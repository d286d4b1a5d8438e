"""The n-gram counts an exported ``tfidf-lr`` model's graph reads, without scikit-learn.

The ``tfidf-lr`` baseline's features are scikit-learn ``TfidfVectorizer`` s (word 1-2 grams and character 2-5 grams
within word boundaries). ONNX has no operator for character n-grams within word boundaries (skl2onnx converts
word n-grams only), so an exported folder keeps the analysers' settings and vocabularies in ``ngrams.json`` and
this module counts each text's n-grams the way scikit-learn's analysers cut them (``_word_ngrams`` and
``_char_wb_ngrams`` in ``sklearn/feature_extraction/text.py``), as a tokenizer turns texts into ids. Everything
after the counts (sublinear tf, idf, the L2 normalisation of each part, the head) is in the graph.
``tests/test_export.py`` checks the counts equal scikit-learn's on awkward texts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

_WHITE_SPACES = re.compile(r"\s\s+")


class NgramCounter:
    """Text -> n-gram counts over the exported vocabularies (word part first, then character part).

    Args:
        parts: For each part, ``{"analyzer": "word" | "char_wb", "ngram_range": [lo, hi], "lowercase": bool,
            "token_pattern": str (word part), "terms": [...] in column order}``.
    """

    def __init__(self, parts: Sequence[dict[str, Any]]) -> None:
        self.parts = list(parts)
        self._columns: list[dict[str, int]] = []
        offset = 0
        for part in self.parts:
            if part["analyzer"] not in ("word", "char_wb"):
                raise ValueError(f"unsupported analyzer {part['analyzer']!r}; export again with this transferkit")
            self._columns.append({term: offset + i for i, term in enumerate(part["terms"])})
            offset += len(part["terms"])
        self.dim = offset
        self._patterns = [re.compile(part.get("token_pattern") or r"(?u)\b\w\w+\b") for part in self.parts]

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, counts) of the n-grams of ``text`` that are in the vocabularies."""
        counts: Counter[int] = Counter()
        for part, columns, pattern in zip(self.parts, self._columns, self._patterns, strict=True):
            document = text.lower() if part.get("lowercase", True) else text
            lo, hi = part["ngram_range"]
            grams = (
                _word_ngrams(pattern.findall(document), lo, hi)
                if part["analyzer"] == "word"
                else _char_wb(document, lo, hi)
            )
            counts.update(columns[gram] for gram in grams if gram in columns)
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        return columns, np.fromiter(counts.values(), dtype=np.float32, count=len(counts))

    def dense(self, rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Sparse rows from :meth:`sparse` as one (n, dim) float32 matrix (the graph's input)."""
        matrix = np.zeros((len(rows), self.dim), dtype=np.float32)
        for row, (columns, counts) in enumerate(rows):
            matrix[row, columns] = counts
        return matrix


def _word_ngrams(tokens: list[str], lo: int, hi: int) -> Iterator[str]:
    for n in range(lo, hi + 1):
        for start in range(len(tokens) - n + 1):
            yield " ".join(tokens[start : start + n])


def _char_wb(text: str, lo: int, hi: int) -> Iterator[str]:
    """Character n-grams of each whitespace-separated word padded with one space each side; a padded word no longer
    than an n-gram length counts once, as itself, and ends the word's n-grams."""
    for word in _WHITE_SPACES.sub(" ", text).split():
        word = f" {word} "
        for n in range(lo, hi + 1):
            if len(word) <= n:
                yield word
                break
            for start in range(len(word) - n + 1):
                yield word[start : start + n]
