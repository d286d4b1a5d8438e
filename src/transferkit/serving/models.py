"""The models a server holds: loading model folders (PyTorch or exported ONNX) and decoding request inputs.

An exported folder (``transferkit export``) is served by ONNX Runtime without torch; a PyTorch model folder
(``transferkit fit``) needs torch, which is imported only when such a folder is loaded.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.preprocess import RATE as SAMPLE_RATE  # the rate every audio backbone reads
from transferkit.backbones.preprocess import load_image, to_rate
from transferkit.errors import TransferKitError
from transferkit.export.runtime import ExportedModel, is_exported
from transferkit.serving.config import ServeConfig
from transferkit.serving.protocol import RequestError

MAX_PIXELS = 40_000_000  # a small file can claim a huge canvas; refuse it before decoding


@dataclass
class ServedModel:
    """One loaded model and the facts the routes need.

    Attributes:
        name: The model folder's name, as it appears in URLs.
        path: Where it was loaded from.
        model: A :class:`transferkit.TransferModel` or an exported model; both have ``task``, ``classes``,
            ``modality`` and ``predict_outputs(inputs) -> (predictions, probabilities or None)``.
        platform: "transferkit_pytorch" or "onnxruntime_onnx" (the OIP metadata's platform).
    """

    name: str
    path: Path
    model: Any
    platform: str

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    @property
    def modality(self) -> str:
        return self.model.modality

    def predict(self, inputs: Sequence[Any]) -> tuple[list[Any], np.ndarray | None]:
        """Predictions and probabilities (None for regression) for decoded inputs, in one call to the model."""
        return self.model.predict_outputs(list(inputs))


def model_name(path: str | Path) -> str:
    """The name a model folder is served under: its own name as given (``models/spam/`` and ``./spam``: "spam";
    a link keeps its own name)."""
    return Path(os.path.abspath(Path(path).expanduser())).name


def load_served_model(path: str | Path) -> ServedModel:
    """Load one model folder for serving.

    Raises:
        TransferKitError: The folder does not exist or is not a transferkit model (PyTorch or exported).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TransferKitError(
            f"model folder {str(path)!r} does not exist; pass a folder written by `transferkit fit` or "
            "`transferkit export`"
        )
    if is_exported(path):
        return ServedModel(name=model_name(path), path=path, model=ExportedModel(path), platform="onnxruntime_onnx")
    try:
        from transferkit.artifacts import load_model
    except ModuleNotFoundError as error:
        raise TransferKitError(
            f"{str(path)!r} is a PyTorch model folder and {error.name} is not installed; install it, or serve the "
            "folder `transferkit export` writes from it (no torch needed)"
        ) from None
    model = load_model(path)
    # A server must not grow the embedding cache by every text it is sent, nor share its SQLite file
    # between threads; encoding without it gives the same numbers.
    model.config.use_cache = False
    return ServedModel(name=model_name(path), path=path, model=model, platform="transferkit_pytorch")


def load_served_models(paths: Sequence[str | Path]) -> dict[str, ServedModel]:
    """Load every folder, keyed by folder name.

    Raises:
        TransferKitError: No folder, a folder that is not a model, or two folders with the same name.
    """
    if not paths:
        raise TransferKitError("no model to serve; pass one or more model folders")
    seen: dict[str, str] = {}
    for path in paths:
        name = model_name(path)
        if name in seen:
            raise TransferKitError(
                f"two models are named {name!r} ({seen[name]} and {path}); the URL uses the folder name, so "
                "rename or copy one folder"
            )
        seen[name] = str(path)
    models = [load_served_model(path) for path in paths]
    return {model.name: model for model in models}


def check_batch(values: list[Any], config: ServeConfig) -> None:
    """Refuse an empty request or one with more inputs than ``config.max_batch`` (422)."""
    if not values:
        raise RequestError(422, "no inputs; send at least one")
    if len(values) > config.max_batch:
        raise RequestError(
            422, f"{len(values)} inputs in one request; the most is {config.max_batch} (split the request)"
        )


def decode_inputs(values: list[Any], modality: str, config: ServeConfig) -> list[Any]:
    """What the model reads from JSON values: texts as they are; images (PIL, RGB) and audio (float32 mono
    samples at 16 kHz) from base64 strings of their files.

    Raises:
        RequestError: 422 for a value of the wrong type, an empty or too long text, bad base64, a file over
            ``config.max_file_bytes``, or bytes that are not an image or a sound file.
    """
    check_batch(values, config)
    decoded = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            kind = "texts" if modality == "text" else f"base64 strings of {modality} files"
            raise RequestError(422, f"input {index} is {type(value).__name__}; this model takes {kind}")
        if modality == "text":
            if not value.strip():
                raise RequestError(422, f"input {index} is an empty text; send text to classify")
            if not value.isascii() and not _encodable(value):
                raise RequestError(422, f"input {index} holds a lone surrogate (\\ud800-\\udfff); send valid Unicode")
            if len(value) > config.max_text_chars:
                raise RequestError(
                    422, f"input {index} has {len(value)} characters; the most is {config.max_text_chars}"
                )
            decoded.append(value)
            continue
        data = _base64(value, index, config)
        decoded.append(_image(data, index) if modality == "image" else _audio(data, index))
    return decoded


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _base64(value: str, index: int, config: ServeConfig) -> bytes:
    # 4 base64 characters carry 3 bytes: refuse an oversized file before decoding it
    if len(value) > (config.max_file_bytes + 2) // 3 * 4 + 4:
        raise RequestError(422, f"input {index} is larger than {config.max_file_bytes} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(422, f"input {index} is not valid base64; send the file's bytes base64-encoded") from None
    if not data:
        raise RequestError(422, f"input {index} is empty")
    if len(data) > config.max_file_bytes:
        raise RequestError(422, f"input {index} has {len(data)} bytes; the most is {config.max_file_bytes}")
    return data


def _image(data: bytes, index: int) -> Any:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise RequestError(
                    422, f"input {index} has {opened.width}x{opened.height} pixels; the most is {MAX_PIXELS}"
                )
            opened.load()
            image = opened.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RequestError(422, f"input {index} is not a readable image ({type(error).__name__})") from None
    return load_image(image)  # as `transferkit predict` reads a file: transparency composed on white, RGB


def _audio(data: bytes, index: int) -> np.ndarray:
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise RequestError(422, f"input {index} is not a readable sound file ({error}); use WAV, FLAC or OGG") from None
    samples = samples.mean(axis=1)
    if samples.size == 0:
        raise RequestError(422, f"input {index} holds no samples")
    return np.ascontiguousarray(to_rate(samples, int(rate), SAMPLE_RATE), dtype=np.float32)
