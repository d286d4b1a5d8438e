"""Save and load fitted models as folders of safetensors + JSON (never pickle).

A model folder holds ``config.json`` (task, labels, strategy, settings, the backbone reference with the
SHA-256 of its pre-trained weights, metrics, and the list of state parts it holds) and one or more files per
state part (:mod:`transferkit.state`): ``head.safetensors`` always; ``backbone.safetensors`` with the
parameters fine-tuning changed; for a TF-IDF model (chosen by ``auto`` when it beats transfer) the idf
weights and the vocabulary; and whatever later strategies declare (adapters, adaptation statistics).
Loading refuses a part nobody declared and a tensor file no listed part owns.

Format versions: 1 had no list of parts (they are inferred when loading); 2 lists them. Folders are written
to a hidden temporary sibling and renamed into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from transferkit._version import __version__
from transferkit.backbones import create_backbone
from transferkit.config import FitConfig
from transferkit.errors import ModelFolderError, TransferKitError
from transferkit.files import atomic_folder, has_format, write_json
from transferkit.heads import head_from_state
from transferkit.model import TransferModel
from transferkit.state import STATE_PARTS, StatePart, register_state_part
from transferkit.strategies import ngrams as _ngrams  # noqa: F401  (declares the "ngrams" state part)
from transferkit.strategies.registry import STRATEGIES
from transferkit.targets import TargetEncoder

FORMAT = "transferkit-model"
FORMAT_VERSION = 2
CONFIG = "config.json"
HEAD = "head.safetensors"
BACKBONE = "backbone.safetensors"
# Parts loading before this order provide the backbone themselves (a featuriser); after it, the backbone exists.
BACKBONE_READY = 10


def is_model_folder(path: Path) -> bool:
    return has_format(path / CONFIG, FORMAT)


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
    path = check_output(path, overwrite=overwrite)
    _declare_all_parts()
    parts = [part for part in sorted(STATE_PARTS.values(), key=lambda p: p.order) if part.applies(model)]
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "transferkit_version": __version__,
        "task": model.task,
        "target": model.target.to_json(),
        "strategy": model.strategy,
        "backbone": model.backbone.reference(),
        "head": model.head.config(),
        "state": [part.name for part in parts],
        "finetuned_parameters": len(model.finetuned),
        "temperature": model.temperature,
        "settings": model.config.to_json(),
        "training": model.info,
        "metrics": model.metrics,
        "data": getattr(model, "data_info", {}),
    }
    with atomic_folder(path) as folder:
        for part in parts:
            part.save(model, folder)
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
        ModelFolderError: Not a model folder, damaged files, state this version does not know, or a backbone
            whose weights differ from training.
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
    parts = _parts_of(path, config)
    settings = FitConfig.from_json({**config.get("settings", {}), "quiet": True, "cache_dir": cache_dir})
    loaded: dict[str, Any] = {"backbone": None, "head": None, "finetuned": [], "adapter": None, "ngrams": None}
    for part in parts:
        if part.order >= BACKBONE_READY and loaded["backbone"] is None:
            loaded["backbone"] = _pretrained_backbone(path, config["backbone"])
        try:
            part.load(path, config, loaded)
        except ModelFolderError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as error:
            raise ModelFolderError(
                f"model folder {str(path)!r} is damaged ({type(error).__name__}: {error}); fit again"
            ) from None
    model = TransferModel(
        backbone=loaded["backbone"],
        head=loaded["head"],
        target=TargetEncoder.from_json(config["target"]),
        config=settings,
        strategy=config["strategy"],
        finetuned=loaded["finetuned"],
        adapter=loaded["adapter"],
        info=config.get("training", {}),
        ngrams=loaded["ngrams"],
    )
    model.metrics = config.get("metrics", {})
    model.data_info = config.get("data", {})
    model.temperature = float(config.get("temperature", 1.0))
    return model


def _declare_all_parts() -> None:
    """Import every strategy's implementation, so that the state parts they declare are registered."""
    for spec in STRATEGIES:
        spec.implementation()


def _parts_of(path: Path, config: dict[str, Any]) -> list[StatePart]:
    """The state parts the folder lists (inferred for format 1), in load order; refuses unknown parts and tensor
    files that no listed part owns."""
    names = config.get("state")
    if names is None:  # format 1: head, plus fine-tuned tensors or a TF-IDF featuriser
        names = ["head"]
        names += ["backbone-delta"] if config.get("finetuned_parameters") else []
        names += ["tfidf-features"] if config.get("backbone", {}).get("kind") == "tfidf" else []
    _declare_all_parts()
    unknown = [name for name in names if name not in STATE_PARTS]
    if unknown:
        raise ModelFolderError(
            f"{str(path)!r} holds state {', '.join(map(repr, unknown))} that this transferkit does not know "
            f"(written by transferkit {config.get('transferkit_version', '?')}); upgrade: pip install -U transferkit"
        )
    parts = sorted((STATE_PARTS[name] for name in names), key=lambda p: p.order)
    owned = {file for part in parts for file in part.files}
    strays = sorted(f.name for f in path.glob("*.safetensors") if f.name not in owned)
    if strays:
        raise ModelFolderError(
            f"{str(path)!r} holds {', '.join(strays)}, which no state part in its {CONFIG} declares; "
            "the folder is damaged or was written by a newer transferkit"
        )
    return parts


def _pretrained_backbone(path: Path, reference: dict[str, Any]):
    """The backbone from its saved reference, refused when its weights differ from those at training time."""
    backbone = create_backbone(reference)
    expected = reference.get("weights_sha256")
    if expected and backbone.weights_hash != expected:
        raise ModelFolderError(
            f"backbone {reference.get('name')!r} installed here differs from the one {str(path)!r} was trained with "
            f"(weights {backbone.weights_hash[:12]} vs {expected[:12]}); install the same backbone version"
        )
    return backbone


def _load_head(path: Path, config: dict[str, Any], loaded: dict[str, Any]) -> None:
    loaded["head"] = head_from_state(load_file(str(path / HEAD)), config["head"])


def _load_backbone_delta(path: Path, config: dict[str, Any], loaded: dict[str, Any]) -> None:
    state = load_file(str(path / BACKBONE))
    module = loaded["backbone"].module
    missing = set(state) - set(module.state_dict())
    if missing:
        raise ModelFolderError(f"{BACKBONE} in {str(path)!r} has unknown parameters ({sorted(missing)[:3]})")
    module.load_state_dict(state, strict=False)
    loaded["finetuned"] = sorted({*loaded["finetuned"], *state})


def _delta(model: TransferModel) -> dict[str, Any]:
    """The moved backbone tensors that no adapter stands for (an adapter saves its own, smaller tensors)."""
    if not model.finetuned:
        return {}
    merged = set(model.adapter["merged"]) if model.adapter else set()
    return {name: tensor for name, tensor in model.finetuned_state().items() if name not in merged}


register_state_part(
    StatePart(
        name="backbone-delta",
        files=(BACKBONE,),
        applies=lambda model: bool(_delta(model)),
        save=lambda model, folder: save_file(_delta(model), str(folder / BACKBONE)),
        load=_load_backbone_delta,
        order=50,
    )
)
register_state_part(
    StatePart(
        name="head",
        files=(HEAD,),
        applies=lambda model: True,
        save=lambda model, folder: save_file(model.head.state(), str(folder / HEAD)),
        load=_load_head,
        order=100,
    )
)
