"""The data an export checks and measures on: the model's own held-out set, read again as ``fit`` split it.

``fit`` records where its data came from, the held-out share and the seed (``model.data_info``); the same
split gives back the held-out examples, so ``export --quantize int8`` measures what int8 costs on data the
model never trained on, without the user passing anything. A model fitted on a DataFrame, or on a file that
has moved, has no such data: then ``--test`` gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.data import load_labeled, train_test_indices
from transferkit.datasets import BUILTIN_DATASETS
from transferkit.errors import TransferKitError
from transferkit.evaluation import compute_metrics

MAX_MEASURE = 1000  # held-out examples the int8 cost is measured on (a seeded random subset beyond this)
CALIBRATION_IMAGES = 64  # held-out images static int8 quantisation calibrates activations on
_TEXTS = [
    "ok",
    "The meeting moved to Thursday at 10am; please bring the quarterly figures.",
    "free!!! click here now to claim your prize " * 12,
    "Ünïcödé, emoji 🙂 and numbers 3.14159 in one line",
]


def model_data(model: Any) -> tuple[list[Any] | None, tuple[list[Any], list[Any]] | None]:
    """The model's training inputs and its held-out ``(inputs, labels)``, as ``fit`` split them; each None when
    it cannot be read again (a DataFrame, a moved or changed file)."""
    info = model.data_info or {}
    columns = {"text_col": info.get("text_col"), "label_col": info.get("label_col"), "task": model.task}
    modality = model.modality
    source = info.get("data_path") or info.get("source")
    readable = bool(source) and (source in BUILTIN_DATASETS or Path(source).exists())
    try:
        if info.get("test") and Path(info["test"]).exists():
            test = load_labeled(info["test"], **columns, min_classes=1, modality=modality)
            train = load_labeled(source, **columns, modality=modality).inputs if readable else None
            return train, (test.inputs, test.y)
        share = info.get("test_size")
        if not share or not readable:
            return None, None
        data = load_labeled(source, **columns, modality=modality)
    except TransferKitError:
        return None, None  # the file changed since training: no held-out data to trust
    if len(data.y) != info.get("n_train", 0) + info.get("n_test", 0):
        return None, None  # rows were added or removed since training: this split is not the model's
    train, held = train_test_indices(data.y, test_size=share, task=data.task, seed=model.config.seed)
    return [data.inputs[i] for i in train], ([data.inputs[i] for i in held], [data.y[i] for i in held])


def measure_set(held: tuple[Sequence[Any], Sequence[Any]]) -> tuple[list[Any], list[Any]]:
    """At most :data:`MAX_MEASURE` held-out examples (a seeded random subset beyond that)."""
    inputs, labels = list(held[0]), list(held[1])
    if len(inputs) <= MAX_MEASURE:
        return inputs, labels
    chosen = np.sort(np.random.default_rng(0).choice(len(inputs), MAX_MEASURE, replace=False))
    return [inputs[i] for i in chosen], [labels[i] for i in chosen]


def sample_inputs(model: Any, held: tuple[Sequence[Any], Sequence[Any]] | None, n: int = 64) -> list[Any]:
    """Inputs to compare the fp32 graph with PyTorch on: held-out ones when there are, else made-up texts of
    very different lengths, seeded random images of odd sizes or noise clips of several lengths."""
    if held is not None and len(held[0]) >= 2:
        inputs = list(held[0])
        chosen = np.random.default_rng(0).choice(len(inputs), min(n, len(inputs)), replace=False)
        return [inputs[i] for i in sorted(chosen)]
    if model.modality == "text":
        return list(_TEXTS)
    rng = np.random.default_rng(0)
    if model.modality == "audio":  # 0.5 to 3 s of noise at 16 kHz: one to several GE2E windows
        return [rng.normal(0, 0.1, size).astype(np.float32) for size in (8_000, 25_600, 48_000)]
    return [rng.integers(0, 256, size=(37 + 11 * i, 53 - 7 * i, 3), dtype=np.uint8) for i in range(4)]


class PixelReader:
    """ONNX Runtime's calibration reader for static int8: up to :data:`CALIBRATION_IMAGES` of ``images``, in
    batches of 8, as the exported folder's runtime prepares them."""

    def __init__(self, images: list[Any] | None, exported: Any) -> None:
        if not images:
            raise TransferKitError(
                "int8 for image models calibrates on the model's images, and they cannot be read again; "
                "pass labeled data (--test DATA)"
            )
        chosen = np.random.default_rng(0).permutation(len(images))[:CALIBRATION_IMAGES]
        inputs = [images[i] for i in chosen]
        name = exported.inputs["names"][0]
        self._batches = iter([{name: exported._feeds(inputs[s : s + 8])[name]} for s in range(0, len(inputs), 8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def compare_outputs(task: str, full: list[Any], int8: list[Any], truth: list[Any]) -> dict[str, Any]:
    """The headline metric of the fp32 and the int8 predictions, and how often the two agree."""
    key = "r2" if task == "regression" else "macro_f1"
    classes = None
    if task == "multilabel":
        classes = sorted({label for row in [*truth, *full, *int8] for label in row})
    elif task == "classification":
        classes = sorted({str(v) for v in [*truth, *full, *int8]})
    fp32_score = compute_metrics(task, truth, full, classes)[key]
    int8_score = compute_metrics(task, truth, int8, classes)[key]
    if task == "regression":
        agreement = float(np.corrcoef(np.ravel(full), np.ravel(int8))[0, 1])
    else:
        agreement = float(np.mean([a == b for a, b in zip(full, int8, strict=True)]))
    return {
        "measured": True, "metric": key, "n": len(truth), "fp32": round(float(fp32_score), 4),
        "int8": round(float(int8_score), 4), "change": round(float(int8_score - fp32_score), 4),
        "agreement": round(agreement, 4),
    }  # fmt: skip


def describe(cost: dict[str, Any]) -> str:
    """One line on what int8 cost."""
    if not cost.get("measured"):
        return f"int8 cost not measured: {cost['why']}"
    what = "predictions the same" if cost["metric"] != "r2" else "correlation of the predictions"
    return (
        f"int8 on {cost['n']} held-out examples: {cost['metric']} {cost['fp32']:.4f} (fp32) -> {cost['int8']:.4f} "
        f"(int8), change {cost['change']:+.4f}; {what}: {cost['agreement']:.1%}"
    )
