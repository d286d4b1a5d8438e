"""Export a fitted model to one ONNX graph from raw model inputs to probabilities, optionally int8.

The graph holds everything the PyTorch model computes after reading its inputs: the backbone (with the weights
fine-tuning, contrastive training or merged LoRA adapters moved), pooling, normalisation, the head, the
calibration temperature and the softmax/sigmoid (or, for regression, the de-standardisation). Beside it go
what turns inputs into the graph's inputs (``tokenizer.json`` for texts, the data config for images) and
``manifest.json``. :mod:`transferkit.export.runtime` runs such a folder without torch.

Before anything is written the fp32 graph is checked against the PyTorch model on real inputs (largest
probability difference, in the manifest); with ``quantize="int8"`` the int8 graph's macro-F1 (or R2) is
measured against the fp32 graph's on the model's own held-out data and printed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit._version import __version__
from transferkit.backbones.onnx_runtime import export as export_module
from transferkit.backbones.preprocess import GE2E_FFT, RATE
from transferkit.errors import TransferKitError
from transferkit.export import measure, runtime
from transferkit.export.heads import merge_onnx_backbone, outputs_module
from transferkit.files import atomic_folder, write_json
from transferkit.progress import say

QUANTIZE = ("int8",)
CHECK_EXAMPLES = 64  # inputs the fp32 graph is compared with PyTorch on
TOLERANCE = 1e-4  # largest probability difference accepted between the fp32 graph and PyTorch


class _ClipGraph(torch.nn.Module):
    """One audio clip's partial windows -> the normalised mean of their embeddings (as GE2E embeds a clip) ->
    head -> outputs, for one clip per run."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.body = model.backbone.module
        self.head = _head_module(model.head)
        self.outputs = outputs_module(model)
        self.backbone = [model.backbone]

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        mean = self.backbone[0].forward({"mels": mels}).mean(dim=0, keepdim=True)
        return self.outputs(self.head(mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-12)))


class _Graph(torch.nn.Module):
    """``outputs(head(backbone.forward(inputs)))`` as one module, for a torch backbone; with an n-gram blend the
    last input is the n-gram counts and the logits are blended as :meth:`NgramBlend.blend` blends them."""

    def __init__(self, model: Any, names: list[str]) -> None:
        super().__init__()
        self.body = model.backbone.module  # registered: the exporter sees the weights as parameters
        self.head = _head_module(model.head)
        self.outputs = outputs_module(model)
        self.backbone, self.names = [model.backbone], names  # a list: the backbone itself is not a module
        blend = model.ngrams
        self.ngrams = None if blend is None else torch.nn.Sequential(_Tfidf(blend.features), _head_module(blend.head))
        self.weight = 0.0 if blend is None else blend.weight

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.ngrams is not None:
            *tensors, counts = tensors
        batch = dict(zip(self.names, tensors, strict=True))
        scores = self.head(self.backbone[0].forward(batch))
        if self.ngrams is not None:
            scores = (1.0 - self.weight) * scores + self.weight * self.ngrams(counts)
        return self.outputs(scores)


class _Tfidf(torch.nn.Module):
    """n-gram counts -> sublinear tf x idf, each part (word, character) L2-normalised as scikit-learn's
    ``TfidfVectorizer`` does (:mod:`transferkit.export.ngrams` counts)."""

    def __init__(self, features: Any) -> None:
        super().__init__()
        idf = [vectorizer.idf_ for vectorizer in (features.word, features.char)]
        self.register_buffer("idf", torch.from_numpy(np.concatenate(idf).astype(np.float32)))
        self.split = len(idf[0])

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        weights = torch.where(counts > 0, 1.0 + torch.log(counts.clamp(min=1.0)), torch.zeros_like(counts)) * self.idf
        parts = [weights[:, : self.split], weights[:, self.split :]]
        return torch.cat([part / part.norm(dim=1, keepdim=True).clamp(min=1e-12) for part in parts], dim=1)


class _TfidfGraph(torch.nn.Module):
    """n-gram counts -> TF-IDF -> head -> outputs (the ``tfidf-lr`` model)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.features = _Tfidf(model.backbone)
        self.head = _head_module(model.head)
        self.outputs = outputs_module(model)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.outputs(self.head(self.features(counts)))


def ngram_parts(features: Any) -> list[dict[str, Any]]:
    """The ``tfidf-lr`` featuriser's analysers for :class:`transferkit.export.ngrams.NgramCounter`."""
    terms = features.vocabulary()
    parts = []
    for part, vectorizer in (("word", features.word), ("char", features.char)):
        parts.append({
            "analyzer": vectorizer.analyzer, "ngram_range": list(vectorizer.ngram_range),
            "lowercase": vectorizer.lowercase, "token_pattern": vectorizer.token_pattern, "terms": terms[part],
        })  # fmt: skip
    return parts


def _head_module(head: Any) -> torch.nn.Module:
    return head.to_torch() if head.kind == "linear" else head.network


def exportable(model: Any) -> str:
    """How ``model`` is exported ("transformer", "torch-image", "onnx-image"), or a one-line error saying why
    it cannot be."""
    backbone = model.backbone
    name = getattr(backbone, "name", type(backbone).__name__)
    if getattr(backbone, "kind", None) == "tfidf":
        return "tfidf"
    fast = getattr(getattr(backbone, "tokenizer", None), "backend_tokenizer", None)
    if backbone.modality == "text" and fast is not None and hasattr(backbone, "_layers"):
        return "transformer"
    words = getattr(backbone, "tokenizer", None)
    if backbone.modality == "text" and (hasattr(words, "tokenizer") or hasattr(words, "vocabulary")):
        return "static"
    if backbone.modality == "audio" and hasattr(backbone, "_mels"):
        return "ge2e"
    if backbone.modality == "image" and getattr(backbone, "trainable", False):
        return "torch-image"
    if backbone.modality == "image" and hasattr(backbone, "_session"):
        return "onnx-image"
    raise TransferKitError(
        f"backbone {name!r} ({backbone.modality}) cannot be exported yet: export supports transformer text "
        "backbones (minilm, any BERT-like folder), word-vector tables (wordllama, glove-50d) and image backbones "
        "(efficientnet-lite0, small-cnn, .onnx networks) and ge2e audio"
    )


def export_model(
    model: Any,
    output: str | Path,
    *,
    quantize: str | None = None,
    test: tuple[Sequence[Any], Sequence[Any]] | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Write ``model`` as an exported folder at ``output``; returns its manifest.

    Args:
        model: A fitted :class:`~transferkit.model.TransferModel`.
        quantize: None (fp32) or "int8" (dynamic quantisation of weights for texts; static, calibrated on
            held-out images, for images).
        test: Labeled ``(inputs, labels)`` to measure the int8 cost on; None uses the model's own held-out
            data when it can be read again (see :func:`transferkit.export.measure.model_data`).
        overwrite: Replace an existing exported folder.

    Raises:
        TransferKitError: The model cannot be exported, the output exists, or the fp32 graph disagrees with
            PyTorch (a bug: nothing is written).
    """
    if quantize not in (None, *QUANTIZE):
        raise TransferKitError(f"quantize must be one of {', '.join(QUANTIZE)} (or none), got {quantize!r}")
    kind = exportable(model)
    path = _check_output(output, overwrite)
    training, own_held = measure.model_data(model)  # read once: checks, calibration and the int8 cost use it
    held = test if test is not None else own_held
    calibration = training or (None if held is None else list(held[0]))  # images static int8 calibrates on
    check_inputs = measure.sample_inputs(model, held)
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.onnx"
        inputs_spec = _write_graph(model, kind, fp32, check_inputs[:2])
        with atomic_folder(path) as folder:
            _write_inputs(model, kind, folder)
            manifest = _manifest(model, kind, inputs_spec)
            (folder / runtime.GRAPH).write_bytes(fp32.read_bytes())
            write_json(folder / runtime.MANIFEST, manifest)
            difference = _check_against_torch(model, runtime.ExportedModel(folder, threads=1), check_inputs)
            manifest["export"] = {"max_probability_difference": difference, "checked_inputs": len(check_inputs)}
            if quantize == "int8":
                quantized = Path(work) / "int8.onnx"
                _quantize(fp32, quantized, kind, calibration, folder)
                (folder / runtime.GRAPH).write_bytes(quantized.read_bytes())
                manifest["precision"] = "int8"
                write_json(folder / runtime.MANIFEST, manifest)
                manifest["export"]["int8"] = _int8_cost(folder, fp32, held, model)
            manifest["export"]["size_bytes"] = (folder / runtime.GRAPH).stat().st_size
            write_json(folder / runtime.MANIFEST, manifest)
    _report(manifest, path, quiet)
    return manifest


def _check_output(output: str | Path, overwrite: bool) -> Path:
    path = Path(output).expanduser()
    if path.exists():
        if not overwrite:
            raise TransferKitError(f"output {str(path)!r} already exists; pass --overwrite to replace it")
        if not path.is_dir():
            raise TransferKitError(f"output {str(path)!r} is a file; choose a folder path")
        if any(path.iterdir()) and not runtime.is_exported(path):
            raise TransferKitError(
                f"output {str(path)!r} is a non-empty folder that transferkit export did not write; "
                "refusing to replace it"
            )
    return path


def _write_graph(model: Any, kind: str, path: Path, examples: list[Any]) -> dict[str, Any]:
    """The fp32 graph at ``path``; returns the inputs' description for the manifest."""
    backbone = model.backbone
    output = "prediction" if model.task == "regression" else "probabilities"
    if kind == "tfidf":
        graph = _TfidfGraph(model)
        example = torch.ones(2, backbone.dim)
        export_module(
            graph, (example,), ["counts"], {"counts": {0: "batch"}, output: {0: "batch"}}, path, output=output
        )
        return {"kind": "ngrams", "names": ["counts"]}
    backbone.module.eval()
    if kind == "onnx-image":
        merge_onnx_backbone(backbone, model, path)
        return {"kind": "pixels", "names": [backbone._input], "data_config": backbone.data_config}
    if kind == "ge2e":
        export_module(_ClipGraph(model), (torch.zeros(2, 160, 40),), ["mels"], {"mels": {0: "windows"}}, path,
                      output=output)  # fmt: skip
        return {"kind": "ge2e", "names": ["mels"], "trim": bool(backbone.trim)}
    batch = backbone.tokenize(examples)
    if kind in ("transformer", "static"):
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in batch]
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
    else:
        names, axes = ["pixels"], {"pixels": {0: "batch"}}
    axes[output] = {0: "batch"}
    graph, tensors = _Graph(model, names), tuple(batch[n] for n in names)
    blended = graph.ngrams is not None
    if blended:  # the n-gram counts come last
        tensors += (torch.ones(len(examples), model.ngrams.features.dim),)
        axes["counts"] = {0: "batch"}
    export_module(graph, tensors, [*names, "counts"] if blended else names, axes, path, output=output)
    if kind == "transformer":
        tokenizer = backbone.tokenizer
        return {
            "kind": "tokens", "names": names, "max_length": backbone.max_length,
            "pad_id": int(tokenizer.pad_token_id), "pad_token": tokenizer.pad_token, "ngrams": blended,
        }  # fmt: skip
    if kind == "static" and hasattr(backbone.tokenizer, "tokenizer"):  # word pieces, no special tokens
        return {
            "kind": "tokens", "names": names, "max_length": backbone.max_length, "pad_id": 0, "pad_token": "[PAD]",
            "special_tokens": False, "ngrams": blended,
        }  # fmt: skip
    if kind == "static":
        return {"kind": "words", "names": names, "max_length": backbone.max_length, "ngrams": blended}
    return {"kind": "pixels", "names": names, "data_config": backbone.data_config}


def _write_inputs(model: Any, kind: str, folder: Path) -> None:
    tokenizer = model.backbone.tokenizer if kind in ("transformer", "static") else None
    if getattr(model, "ngrams", None) is not None:
        write_json(folder / runtime.NGRAMS, ngram_parts(model.ngrams.features))
    if kind == "transformer":
        tokenizer.backend_tokenizer.save(str(folder / runtime.TOKENIZER))
    elif kind == "static" and hasattr(tokenizer, "tokenizer"):
        tokenizer.tokenizer.save(str(folder / runtime.TOKENIZER))
    elif kind == "static":
        write_json(folder / runtime.VOCABULARY, tokenizer.vocabulary)
    elif kind == "tfidf":
        write_json(folder / runtime.NGRAMS, ngram_parts(model.backbone))
    elif kind == "ge2e":
        import librosa

        filters = librosa.filters.mel(sr=RATE, n_fft=GE2E_FFT, n_mels=40).astype(np.float32)
        write_json(folder / runtime.MEL_FILTERS, filters.tolist())
        if model.backbone.trim:
            (folder / runtime.VAD).write_bytes(model.backbone._trimmer.path.read_bytes())


def _manifest(model: Any, kind: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": runtime.FORMAT,
        "format_version": runtime.FORMAT_VERSION,
        "transferkit_version": __version__,
        "task": model.task,
        "classes": model.classes,
        "target": model.target.to_json(),
        "modality": model.modality,
        "n_outputs": int(model.target.n_outputs),
        "strategy": model.strategy,
        "backbone": {k: v for k, v in model.backbone.reference().items() if k != "source"},
        "graph_kind": kind,
        "inputs": inputs,
        "output": "prediction" if model.task == "regression" else "probabilities",
        "precision": "fp32",
        "temperature": model.temperature,
        "batch_size": 32,
        "data": model.data_info,
        "metrics": model.metrics,
    }


def _check_against_torch(model: Any, exported: runtime.ExportedModel, inputs: list[Any]) -> float:
    """Largest difference between the fp32 graph's outputs and PyTorch's on ``inputs``."""
    if model.task == "regression":
        expected = np.asarray(model.predict(inputs), dtype=np.float64)
    else:
        expected = model.predict_proba(inputs)
    difference = float(np.abs(exported.outputs(inputs) - expected).max())
    if difference > TOLERANCE:
        raise TransferKitError(
            f"the exported graph differs from the PyTorch model by {difference:.2g} (more than {TOLERANCE}); "
            "nothing was written; please report this with the model's backbone name"
        )
    return difference


def _quantize(fp32: Path, target: Path, kind: str, calibration: list[Any] | None, folder: Path) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization advises pre-processing on the root logger each time
    try:
        _quantize_graph(fp32, target, kind, calibration, folder)
    finally:
        root.setLevel(level)


def _quantize_graph(fp32: Path, target: Path, kind: str, calibration: list[Any] | None, folder: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static

    if kind in ("transformer", "static", "ge2e", "tfidf"):
        # Weights of MatMul/Gemm in int8, activations quantised on the fly (what sentence-transformers ships), one
        # scale per output channel: on AFINN's held-out set per-tensor scales cost 1.9 points of macro-F1, per-channel
        # ones 0.03 (MiniLM feature extraction; benchmarks/export.py measures the other sets).
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])  # fmt: skip
        return
    # Images: static quantisation, activation ranges calibrated on the model's training images, weights per channel,
    # after ONNX Runtime's pre-processing (batch norm folded); the head and the softmax stay in fp32. On 300 MNIST
    # digits (EfficientNet-Lite0 features) this cost 7 points of macro-F1, dynamic quantisation 44.
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    keep = [n.name for n in onnx.load(str(prepared)).graph.node if n.name.startswith(("/head/", "/outputs/", "head/"))]
    reader = measure.PixelReader(calibration, runtime.ExportedModel(folder, threads=1))
    quantize_static(str(prepared), str(target), reader, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    per_channel=True, nodes_to_exclude=keep)  # fmt: skip


def _int8_cost(folder: Path, fp32: Path, held, model: Any) -> dict[str, Any]:
    """fp32 vs int8 on held-out data: macro-F1 (R2 for regression) of each and how often they agree."""
    if held is None:
        return {"measured": False, "why": "no held-out data: pass test data (--test) to measure the int8 cost"}
    inputs, truth = measure.measure_set(held)
    full = runtime.ExportedModel(folder, graph=fp32).predict(inputs)
    return measure.compare_outputs(model.task, full, runtime.ExportedModel(folder).predict(inputs), truth)


def _report(manifest: dict[str, Any], path: Path, quiet: bool) -> None:
    facts = manifest["export"]
    line = (
        f"exported {manifest['graph_kind']} model to {path} ({manifest['precision']}, {facts['size_bytes'] / 1e6:.1f} "
        f"MB; fp32 graph vs PyTorch: largest difference {facts['max_probability_difference']:.1g})"
    )
    say(line, quiet=quiet)
    cost = facts.get("int8")
    if cost is not None:
        say(measure.describe(cost), quiet=quiet)
