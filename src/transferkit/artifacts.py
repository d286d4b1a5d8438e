"""Save and load fitted models as folders of safetensors + JSON (never pickle).

A model folder holds ``config.json`` (task, labels, strategy, settings, the backbone reference with the
SHA-256 of its pre-trained weights, metrics), ``head.safetensors`` and, for fine-tuned models,
``backbone.safetensors`` with the parameters fine-tuning changed. A TF-IDF baseline (chosen by ``auto`` when
it beats transfer) stores its idf weights in ``features.safetensors`` and its vocabulary, in column order, in
``vocabulary.json``. Folders are written to a hidden
temporary sibling and renamed into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from transferkit.backbones import create_backbone
from transferkit.config import FitConfig
from transferkit.errors import ModelFolderError, TransferKitError
from transferkit.heads import head_from_state
from transferkit.model import TransferModel
from transferkit.targets import TargetEncoder

FORMAT = "transferkit-model"
FORMAT_VERSION = 1
CONFIG = "config.json"
HEAD = "head.safetensors"
BACKBONE = "backbone.safetensors"
FEATURES = "features.safetensors"
VOCABULARY = "vocabulary.json"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n", encoding="utf-8")


def is_model_folder(path: Path) -> bool:
    config = path / CONFIG
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def check_output(path: str | Path, *, overwrite: bool) -> Path:
    """Fail early (before any training) if ``path`` cannot receive a model folder.

    Raises:
        TransferKitError: The path exists (without ``overwrite``), is a file, or is a non-empty folder
            that is not a transferkit model (never deleted, even with ``overwrite``).
    """
    path = Path(path).expanduser()
    if path.exists():
        if not overwrite:
            raise TransferKitError(
                f"output {str(path)!r} already exists; pass --overwrite to replace it or choose another path"
            )
        if not path.is_dir():
            raise TransferKitError(f"output {str(path)!r} is a file; choose a folder path")
        if any(path.iterdir()) and not (is_model_folder(path) or (path / "compare.json").is_file()):
            raise TransferKitError(
                f"output {str(path)!r} is a non-empty folder that transferkit did not write; refusing to replace it"
            )
    return path


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only when the block completes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(old)
            temporary.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            temporary.rename(path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def save_model(
    model: TransferModel,
    path: str | Path,
    *,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    documents: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` to the folder ``path``.

    Args:
        extra: File names -> JSON-ready objects to add.
        documents: File names -> text to add (the HTML report).
    """
    from transferkit import __version__

    path = check_output(path, overwrite=overwrite)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "transferkit_version": __version__,
        "task": model.task,
        "target": model.target.to_json(),
        "strategy": model.strategy,
        "backbone": model.backbone.reference(),
        "head": model.head.config(),
        "finetuned_parameters": len(model.finetuned),
        "temperature": model.temperature,
        "settings": model.config.to_json(),
        "training": model.info,
        "metrics": model.metrics,
        "data": getattr(model, "data_info", {}),
    }
    with atomic_folder(path) as folder:
        save_file(model.head.state(), str(folder / HEAD))
        if model.finetuned:
            save_file(model.finetuned_state(), str(folder / BACKBONE))
        if config["backbone"].get("kind") == "tfidf":
            save_file(model.backbone.state(), str(folder / FEATURES))
            write_json(folder / VOCABULARY, model.backbone.vocabulary())
        write_json(folder / CONFIG, config)
        if model.metrics:
            write_json(folder / "metrics.json", model.metrics)
        for name, content in (extra or {}).items():
            write_json(folder / name, content)
        for name, text in (documents or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
    return path


def load_model(path: str | Path, *, cache_dir: str | None = None) -> TransferModel:
    """Load a folder written by :func:`save_model`.

    Raises:
        ModelFolderError: Not a model folder, damaged files, or a backbone whose weights differ from training.
    """
    path = Path(path).expanduser()
    hint = "pass the --output folder of `transferkit fit`"
    if not path.exists():
        raise ModelFolderError(f"model folder {str(path)!r} does not exist; {hint}")
    if not is_model_folder(path):
        raise ModelFolderError(f"{str(path)!r} is not a transferkit model folder (no valid {CONFIG}); {hint}")
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFolderError(f"{str(path)!r} was written by a newer transferkit; upgrade: pip install -U transferkit")
    if not (path / HEAD).is_file():
        raise ModelFolderError(f"model folder {str(path)!r} is damaged: {HEAD} is missing; fit the model again")
    settings = FitConfig.from_json({**config.get("settings", {}), "quiet": True, "cache_dir": cache_dir})
    reference = config["backbone"]
    backbone = _load_tfidf(path, reference) if reference.get("kind") == "tfidf" else create_backbone(reference)
    expected = reference.get("weights_sha256")
    if expected and backbone.weights_hash != expected:
        raise ModelFolderError(
            f"backbone {reference.get('name')!r} installed here differs from the one {str(path)!r} was trained with "
            f"(weights {backbone.weights_hash[:12]} vs {expected[:12]}); install the same backbone version"
        )
    try:
        head = head_from_state(load_file(str(path / HEAD)), config["head"])
        finetuned: list[str] = []
        if config.get("finetuned_parameters"):
            state = load_file(str(path / BACKBONE))
            missing = set(state) - set(backbone.module.state_dict())
            if missing:
                raise ModelFolderError(f"{BACKBONE} in {str(path)!r} has unknown parameters ({sorted(missing)[:3]})")
            backbone.module.load_state_dict(state, strict=False)
            finetuned = sorted(state)
    except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as error:
        if isinstance(error, ModelFolderError):
            raise
        raise ModelFolderError(
            f"model folder {str(path)!r} is damaged ({type(error).__name__}: {error}); fit again"
        ) from None
    model = TransferModel(
        backbone=backbone,
        head=head,
        target=TargetEncoder.from_json(config["target"]),
        config=settings,
        strategy=config["strategy"],
        finetuned=finetuned,
        info=config.get("training", {}),
    )
    model.metrics = config.get("metrics", {})
    model.data_info = config.get("data", {})
    model.temperature = float(config.get("temperature", 1.0))
    return model


def _load_tfidf(path: Path, reference: dict[str, Any]):
    from transferkit.evaluation.baselines import TfidfFeatures

    try:
        vocabulary = json.loads((path / VOCABULARY).read_text(encoding="utf-8"))
        return TfidfFeatures.from_state(reference, load_file(str(path / FEATURES)), vocabulary)
    except (OSError, KeyError, ValueError, SafetensorError) as error:
        raise ModelFolderError(
            f"model folder {str(path)!r} is damaged ({type(error).__name__}: {error}); fit again"
        ) from None
