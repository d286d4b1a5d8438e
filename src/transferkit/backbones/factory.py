"""Build a backbone from a catalog name, a Hugging Face folder or hub id, an ONNX file or a saved reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferkit.backbones.base import Backbone
from transferkit.backbones.catalog import BACKBONES, DEFAULT_TEXT_BACKBONE, REFERENCE_OPTIONS
from transferkit.backbones.text import load_transformer
from transferkit.errors import BackboneError


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
        options = {k: spec[k] for k in REFERENCE_OPTIONS if k in spec}
        options.update(kwargs)
        if "registry" in source:
            return BACKBONES.create(source["registry"], **options)
        if "onnx" in source:
            return load_onnx(source["onnx"], name=spec.get("name"), **options)
        if "path" in source:
            return load_transformer(source["path"], name=spec.get("name"), source=source, **options)
        if "hub" in source:
            return load_transformer(source["hub"], name=spec.get("name"), source=source, **options)
        raise BackboneError(f"cannot re-create a backbone from reference {spec!r}")
    if spec in BACKBONES:
        return BACKBONES.create(spec, **kwargs)
    if str(spec).lower().endswith(".onnx"):
        return load_onnx(spec, **kwargs)
    if Path(spec).expanduser().exists() or "/" in spec:
        return load_transformer(spec, **kwargs)
    BACKBONES.create(spec)  # raises the "unknown backbone ... did you mean" error
    raise AssertionError("unreachable")


def load_onnx(path: str, *, name: str | None = None, **options: Any) -> Backbone:
    """An ONNX image network as a frozen feature extractor (:class:`~transferkit.backbones.image.OnnxImageBackbone`).

    Options: ``output`` (tensor name to use as features), and the data config (``size``, ``resize``, ``mean``,
    ``std``, ``channels``, ``layout``, or all of them as ``data_config``). Defaults: the graph's first output,
    ImageNet mean/std on 0-255 RGB, size and layout from the graph's input.

    Raises:
        BackboneError: The file is missing or is not an image network.
    """
    from transferkit.backbones.image import OnnxImageBackbone

    file = Path(path).expanduser()
    if not file.is_file():
        raise BackboneError(f"ONNX model {path!r} does not exist; pass the path of a .onnx file")
    options.pop("max_length", None)
    options.pop("normalize", None)
    options.update(options.pop("data_config", {}))
    options.setdefault("mean", (123.675, 116.28, 103.53))
    options.setdefault("std", (58.395, 57.12, 57.375))
    source = {"onnx": str(file.resolve())}
    return OnnxImageBackbone(file, name=name or file.name, source=source, **options)
