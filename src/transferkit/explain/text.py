"""Word attributions for texts: Integrated Gradients through transformer and static-embedding backbones,
occlusion (leave one word out) for every other text model (inference-only engines, TF-IDF).

Each function returns the fields of an :class:`~transferkit.explain.core.Explanation` that depend on the
method (``tokens``, ``attributions``, ``score``...); :func:`transferkit.explain.explain` adds the rest.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from transferkit.explain.core import Target
from transferkit.explain.gradients import captum_attr, integrate, torch_head

MAX_STEPS = 512
WORD = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")  # words (with inner apostrophes, hyphens) and punctuation marks


def words_of(text: str) -> list[tuple[int, int]]:
    """Character spans of the words and punctuation marks of ``text``."""
    return [match.span() for match in WORD.finditer(text)]


def transformer_gradients(
    backbone: Any, head: Any, text: str, target: Target, steps: int | None, max_steps: int | None = None
) -> dict[str, Any]:
    """Integrated Gradients on the output of the embedding layer of a Hugging Face encoder.

    The baseline is the same text with every token but the special ones ([CLS], [SEP]) replaced by [PAD],
    with the attention mask kept, so the path runs from "as many empty positions" to the text. Word pieces are
    summed into whole words (the fast tokenizer's word ids and character offsets).
    """
    attr = captum_attr()
    tokenizer = backbone.tokenizer
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(
        [text], truncation=True, max_length=backbone.max_length, return_tensors="pt", return_offsets_mapping=fast
    )
    offsets = encoded.pop("offset_mapping")[0].tolist() if fast else None
    word_ids = encoded.word_ids(0) if fast else None
    ids = encoded["input_ids"]
    names = [key for key in encoded if key != "input_ids"]
    rest = tuple(encoded[key] for key in names)
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    baseline = torch.where(special.bool()[None], ids, torch.full_like(ids, pad))
    network = backbone.module
    network.eval()
    layer = getattr(network, "embeddings", None)  # BERT-like: word + position + type embeddings, normalised
    if layer is None:
        layer = network.get_input_embeddings()
    linear = torch_head(head)

    def forward(input_ids: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return target.of(linear(backbone.forward({"input_ids": input_ids, **dict(zip(names, extra, strict=True))})))

    with torch.no_grad():
        score, base = (float(forward(x, *rest)[0]) for x in (ids, baseline))
    explainer = attr.LayerIntegratedGradients(forward, layer)

    def attribute(n_steps: int):
        return explainer.attribute(
            ids, baselines=baseline, additional_forward_args=rest, n_steps=n_steps, internal_batch_size=32,
            return_convergence_delta=True,
        )  # fmt: skip

    with torch.enable_grad():
        attributions, delta, used = integrate(attribute, score - base, steps, max_steps or MAX_STEPS)
    per_token = attributions.sum(-1)[0].double().numpy()
    if fast:
        tokens, values = _merge_pieces(text, per_token, word_ids, offsets)
    else:  # slow tokenizers give no word ids: one entry per non-special token
        pieces = tokenizer.convert_ids_to_tokens(ids[0].tolist())
        keep = [i for i, flag in enumerate(special.tolist()) if not flag]
        tokens, values = [pieces[i] for i in keep], [float(per_token[i]) for i in keep]
    return {
        "tokens": tokens, "attributions": values, "score": score, "baseline_score": base,
        "delta": delta, "steps": used,
    }  # fmt: skip


def _merge_pieces(
    text: str, per_token: np.ndarray, word_ids: list[int | None], offsets: list[list[int]]
) -> tuple[list[str], list[float]]:
    """Sum word-piece attributions into the words they came from (special tokens, whose attribution is 0 by
    construction of the baseline, are left out)."""
    spans: dict[int, list[int]] = {}
    totals: dict[int, float] = {}
    for index, word in enumerate(word_ids):
        if word is None:
            continue
        start, end = offsets[index]
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        totals[word] = totals.get(word, 0.0) + float(per_token[index])
    order = sorted(spans)
    return [text[spans[w][0] : spans[w][1]] for w in order], [totals[w] for w in order]


def static_gradients(
    backbone: Any, head: Any, text: str, target: Target, steps: int | None, max_steps: int | None = None
) -> dict[str, Any]:
    """Integrated Gradients on the rows of a static embedding table (WordLlama, GloVe), from all-zero vectors.

    Each word is tokenized on its own, so every table row belongs to exactly one word. The pooled mean is
    linear in the rows, so with a linear head the attributions are exact (delta 0); a normalising backbone
    bends the path and its delta says by how much.
    """
    attr = captum_attr()
    spans = words_of(text)
    pieces = backbone.tokenizer([text[start:end] for start, end in spans])
    ids, owner = [], []
    for word, row in enumerate(pieces):
        ids += row
        owner += [word] * len(row)
    ids, owner = ids[: backbone.max_length], owner[: backbone.max_length]
    linear = torch_head(head)
    network = backbone.module
    if not ids:  # nothing the table knows: the embedding is the zero vector whatever the words
        with torch.no_grad():
            score = float(target.of(linear(torch.zeros(1, backbone.dim)))[0])
        return {"tokens": [text[s:e] for s, e in spans], "attributions": [0.0] * len(spans), "score": score,
                "baseline_score": score, "delta": 0.0, "steps": 0}  # fmt: skip
    with torch.no_grad():
        hidden = network.embedding(torch.tensor([ids]))
    mask = torch.ones(1, len(ids), dtype=torch.long)
    baseline = torch.zeros_like(hidden)

    def forward(states: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return target.of(linear(backbone.forward_suffix({"hidden": states, "attention_mask": attention}, 2)))

    with torch.no_grad():
        score, base = (float(forward(x, mask)[0]) for x in (hidden, baseline))
    explainer = attr.IntegratedGradients(forward)

    def attribute(n_steps: int):
        return explainer.attribute(
            hidden, baselines=baseline, additional_forward_args=(mask,), n_steps=n_steps, internal_batch_size=64,
            return_convergence_delta=True,
        )  # fmt: skip

    with torch.enable_grad():
        attributions, delta, used = integrate(attribute, score - base, steps, max_steps or MAX_STEPS)
    per_token = attributions.sum(-1)[0].double().numpy()
    values = np.zeros(len(spans))
    np.add.at(values, owner, per_token)
    return {
        "tokens": [text[s:e] for s, e in spans], "attributions": values.tolist(), "score": score,
        "baseline_score": base, "delta": delta, "steps": used,
    }  # fmt: skip


def occlusion(model: Any, text: str, target: Target) -> dict[str, Any]:
    """Leave one word out at a time: a word's attribution is how much the score drops without it."""
    spans = words_of(text)
    variants = [text]
    for start, end in spans:
        variants.append(f"{text[:start].rstrip()} {text[end:].lstrip()}".strip())
    raw = model.blend(model.head.scores(model.backbone.encode(variants)), variants)
    scores = np.asarray(target.of(np.asarray(raw)), dtype=np.float64)
    return {
        "tokens": [text[s:e] for s, e in spans],
        "attributions": (scores[0] - scores[1:]).tolist(),
        "score": float(scores[0]),
    }
