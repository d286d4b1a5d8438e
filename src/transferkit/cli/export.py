"""``transferkit export``: one ONNX graph from raw inputs to probabilities, optionally int8."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.cli.app import LabelCol, Quiet, TextCol, app, friendly


@app.command()
@friendly
def export(
    model: Annotated[Path, typer.Argument(help="Model folder written by `transferkit fit`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Exported folder to write.")],
    quantize: Annotated[
        str, typer.Option(help="none | int8 (dynamic for texts; static, calibrated on held-out images, for images).")
    ] = "none",
    test: Annotated[
        str | None,
        typer.Option(help="Labeled data to measure the int8 cost on (default: the model's own held-out data)."),
    ] = None,
    text_col: TextCol = None,
    label_col: LabelCol = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing exported folder.")] = False,
    quiet: Quiet = False,
) -> None:
    """Export a model to ONNX (model.onnx + tokenizer or data config + manifest.json): predict, evaluate and serve
    read the folder without torch."""
    from transferkit.artifacts import load_model
    from transferkit.data import load_labeled
    from transferkit.errors import TransferKitError
    from transferkit.export.graph import export_model

    if quantize not in ("none", "int8"):
        raise TransferKitError(f"--quantize must be none or int8, got {quantize!r}")
    fitted = load_model(model)
    held = None
    if test is not None:
        columns = {"text_col": text_col or fitted.data_info.get("text_col"), "task": fitted.task}
        columns["label_col"] = label_col or fitted.data_info.get("label_col")
        labeled = load_labeled(test, **columns, min_classes=1, modality=fitted.modality)
        held = (labeled.inputs, labeled.y)
    export_model(
        fitted, output, quantize=None if quantize == "none" else quantize, test=held, overwrite=overwrite, quiet=quiet
    )
