"""Run an exported model folder without torch: numpy, tokenizers / Pillow, and ONNX Runtime.

An exported folder (written by :func:`transferkit.export.graph.export_model`) holds one ONNX graph from the
model's raw inputs to its outputs (backbone, pooling, normalisation, head, calibration temperature, softmax),
what turns a user's inputs into the graph's inputs (``tokenizer.json`` for texts, ``ngrams.json`` for the TF-IDF
baseline, the data config for images)
and ``manifest.json`` (task, classes, inputs, outputs, precision, what the export measured). Nothing of the
model is re-implemented here: this module only prepares inputs, runs the graph and names the outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.preprocess import SpeechTrimmer, ge2e_windows, image_pixels, load_audio, word_ids
from transferkit.errors import ModelFolderError
from transferkit.export.ngrams import NgramCounter
from transferkit.files import has_format
from transferkit.progress import progress_bar
from transferkit.targets import TargetEncoder

FORMAT = "transferkit-onnx"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
VOCABULARY = "vocabulary.json"
NGRAMS = "ngrams.json"
MEL_FILTERS = "mel_filters.json"
VAD = "silero_vad.onnx"


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``transferkit export``."""
    return has_format(Path(path).expanduser() / MANIFEST, FORMAT)


class ExportedModel:
    """An exported model: the same prediction interface as :class:`transferkit.model.TransferModel`.

    Args:
        path: The exported folder.
        threads: ONNX Runtime intra-op threads (default: the CPUs this process may use).
        graph: Run this ONNX file instead of the folder's (export compares its fp32 and int8 graphs this way).

    Attributes:
        name: The folder's name. task, classes, modality: as the original model's.
        manifest: The folder's ``manifest.json``.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, graph: str | Path | None = None) -> None:
        path = Path(path).expanduser()
        if not path.exists():
            raise ModelFolderError(f"model folder {str(path)!r} does not exist; pass a folder written by export")
        if not is_exported(path):
            raise ModelFolderError(f"{str(path)!r} is not an exported transferkit model (no valid {MANIFEST})")
        self.path, self.name = path, path.resolve().name
        self.manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        if self.manifest.get("format_version", 0) > FORMAT_VERSION:
            raise ModelFolderError(f"{str(path)!r} was exported by a newer transferkit; pip install -U transferkit")
        self.task: str = self.manifest["task"]
        self.target = TargetEncoder.from_json(self.manifest["target"])
        self.classes: list[str] = list(self.target.classes)
        self.modality: str = self.manifest["modality"]
        self.data_info: dict[str, Any] = self.manifest.get("data", {})
        self.metrics: dict[str, Any] = self.manifest.get("metrics", {})
        self.inputs: dict[str, Any] = self.manifest["inputs"]
        self.batch_size = int(self.manifest.get("batch_size", 32))
        if graph is None and not (path / GRAPH).is_file():
            raise ModelFolderError(f"exported folder {str(path)!r} is damaged: {GRAPH} is missing; export again")
        self._session = _session(Path(graph) if graph is not None else path / GRAPH, threads)
        self._tokenizer = None
        if self.inputs["kind"] == "tokens":
            self._tokenizer = _tokenizer(path / TOKENIZER, self.inputs)
        elif self.inputs["kind"] == "words":
            self._tokenizer = word_ids(json.loads(_file(path, VOCABULARY).read_text(encoding="utf-8")))
        elif self.inputs["kind"] == "ngrams":
            self._tokenizer = NgramCounter(json.loads(_file(path, NGRAMS).read_text(encoding="utf-8")))
        # A text model with an n-gram blend also reads each text's n-gram counts.
        self._ngrams = None
        if self.inputs.get("ngrams"):
            self._ngrams = NgramCounter(json.loads(_file(path, NGRAMS).read_text(encoding="utf-8")))
        elif self.inputs["kind"] == "ge2e":
            self._mel_filters = np.asarray(json.loads(_file(path, MEL_FILTERS).read_text()), dtype=np.float32)
            self._trimmer = SpeechTrimmer(_file(path, VAD)) if self.inputs["trim"] else None
            self.batch_size = 1  # one clip per run: its partial windows are the graph's batch

    def __repr__(self) -> str:
        return f"ExportedModel({str(self.path)!r}, task={self.task!r}, precision={self.manifest.get('precision')!r})"

    def outputs(self, inputs: Sequence[Any], *, quiet: bool = True) -> np.ndarray:
        """The graph's output for every input, in order: probabilities (n, k), or values for regression."""
        items = list(inputs)
        if not items:
            width = len(self.classes) if self.task != "regression" else self.manifest.get("n_outputs", 1)
            return np.zeros((0, width) if width > 1 or self.task != "regression" else (0,), dtype=np.float32)
        prepared = self._prepare(items)
        texts = self.inputs["kind"] in ("tokens", "words")
        # Texts in order of their token count, so each batch pads little; other inputs as they come.
        order = np.argsort([len(row[0]) for row in prepared], kind="stable") if texts else np.arange(len(items))
        chunks, positions = [], []
        with progress_bar("predicting", len(items), quiet=quiet) as advance:
            for start in range(0, len(items), self.batch_size):
                index = order[start : start + self.batch_size]
                chunks.append(self._session.run(None, self._feeds([prepared[i] for i in index]))[0])
                positions.append(index)
                advance(len(index))
        result = np.empty((len(items), *chunks[0].shape[1:]), dtype=np.float32)
        for index, chunk in zip(positions, chunks, strict=True):
            result[index] = chunk
        return result

    def predict_proba(self, inputs: Sequence[Any], *, quiet: bool = True) -> np.ndarray:
        """Class probabilities (n, n_classes); per-label probabilities for multi-label."""
        if self.task == "regression":
            raise TypeError("probabilities are defined for classification only")
        return self.outputs(inputs, quiet=quiet)

    def predict_outputs(self, inputs: Sequence[Any], *, quiet: bool = True) -> tuple[list[Any], np.ndarray | None]:
        """Predictions and probabilities (None for regression) from one pass over ``inputs``."""
        values = self.outputs(inputs, quiet=quiet)
        if self.task == "regression":
            return values.tolist(), None
        if self.task == "multilabel":
            labels = [[c for c, on in zip(self.classes, row, strict=True) if on] for row in values >= 0.5]
            return labels, values
        return [self.classes[i] for i in values.argmax(axis=1)], values

    def predict(self, inputs: Sequence[Any], *, quiet: bool = True) -> list[Any]:
        """Labels (classification), label lists (multi-label) or numbers (regression)."""
        return self.predict_outputs(inputs, quiet=quiet)[0]

    def _prepare(self, items: list[Any]) -> list[Any]:
        """Texts as (token ids, token type ids, n-gram counts or None), tokenized once and truncated; other inputs
        unchanged."""
        kind = self.inputs["kind"]
        if kind not in ("tokens", "words", "ngrams"):
            return items
        if not all(isinstance(text, str) for text in items):
            raise TypeError("this model reads texts; give a list of strings")
        if kind == "ngrams":
            return [self._tokenizer.sparse(text) for text in items]
        if kind == "words":
            rows = [(ids[: self.inputs["max_length"]], None) for ids in self._tokenizer(items)]
        else:
            special = self.inputs.get("special_tokens", True)
            rows = [(e.ids, e.type_ids) for e in self._tokenizer.encode_batch(items, add_special_tokens=special)]
        counts = [None] * len(items) if self._ngrams is None else [self._ngrams.sparse(text) for text in items]
        return [(*row, sparse) for row, sparse in zip(rows, counts, strict=True)]

    def _feeds(self, batch: list[Any]) -> dict[str, np.ndarray]:
        kind = self.inputs["kind"]
        if kind in ("tokens", "words"):  # padded to the batch's longest, with the attention mask
            width = max(1, max(len(row[0]) for row in batch))
            columns = {name: np.zeros((len(batch), width), dtype=np.int64) for name in self.inputs["names"]}
            columns["input_ids"][:] = int(self.inputs.get("pad_id", 0))
            for row, (ids, types, _) in enumerate(batch):
                columns["input_ids"][row, : len(ids)] = ids
                columns["attention_mask"][row, : len(ids)] = 1
                if "token_type_ids" in columns and types is not None:
                    columns["token_type_ids"][row, : len(types)] = types
            if self._ngrams is not None:
                columns["counts"] = self._ngrams.dense([counts for _, _, counts in batch])
            return columns
        if kind == "ngrams":
            return {"counts": self._tokenizer.dense(batch)}
        if kind == "ge2e":
            (item,) = batch
            samples = load_audio(item)
            samples = self._trimmer(samples) if self._trimmer is not None else samples
            return {"mels": ge2e_windows(samples, self._mel_filters)}
        if kind == "pixels":
            return {self.inputs["names"][0]: image_pixels(batch, **self.inputs["data_config"])}
        raise ModelFolderError(f"{str(self.path)!r} has inputs of kind {kind!r} this transferkit cannot read")


def _session(path: Path, threads: int | None):
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ModelFolderError(
            "running an exported model needs onnxruntime; pip install 'transferkit[deploy]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for broken graphs
        raise ModelFolderError(f"{str(path)!r} cannot be loaded by ONNX Runtime ({error}); export again") from None


def _tokenizer(path: Path, inputs: dict[str, Any]):
    """The exported tokenizer, truncating as the backbone did (batches are padded by :meth:`ExportedModel._feeds`)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_file(path.parent, path.name)))
    tokenizer.enable_truncation(int(inputs["max_length"]))
    tokenizer.no_padding()
    return tokenizer


def _file(folder: Path, name: str) -> Path:
    if not (folder / name).is_file():
        raise ModelFolderError(f"exported folder {str(folder)!r} is damaged: {name} is missing; export again")
    return folder / name
