"""``transferkit explain``: why a saved model predicts what it does for a few inputs (words, regions, moments)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from transferkit.cli.app import OnBadFile, TextCol, app, err, friendly, out
from transferkit.errors import TransferKitError


@app.command()
@friendly
def explain(
    model: Annotated[Path, typer.Argument(help="Model folder written by `transferkit fit`.")],
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Texts, or image / audio file paths (or use --file).", show_default=False)
    ] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="A data file (CSV, TSV, JSONL, Parquet) or folder of inputs.")
    ] = None,
    text_col: TextCol = None,
    target: Annotated[
        str | None, typer.Option(help="Class to explain (default: the predicted one; each predicted label).")
    ] = None,
    method: Annotated[str, typer.Option(help="auto | integrated-gradients | occlusion.")] = "auto",
    steps: Annotated[
        int | None, typer.Option(help="Integrated Gradients steps (default: doubled from 32 until they add up).")
    ] = None,
    html_path: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the explanations as JSON here.")] = None,
    top: Annotated[int, typer.Option(help="Words / regions / windows shown per input in the table.")] = 5,
    on_bad_file: OnBadFile = "fail",
) -> None:
    """Explain single predictions: which words (or image regions, or moments of a clip) pushed the model to its
    answer, with the probability, the method and how well the attributions add up (completeness delta)."""
    from transferkit.artifacts import load_model
    from transferkit.data import load_inputs
    from transferkit.data.media import check_files
    from transferkit.explain import explain_html

    if bool(inputs) == bool(file):
        raise TransferKitError("give the inputs to explain either on the command line or with --file, not both")
    for path in (html_path, json_path):
        if path is not None and path.is_dir():
            raise TransferKitError(f"{str(path)!r} is a folder; give a file name such as explained.html")
    fitted = load_model(model)
    modality = fitted.backbone.modality
    if file:
        items, _, _ = load_inputs(
            file, text_col=text_col, remembered_col=fitted.data_info.get("text_col"), modality=modality,
            on_bad_file=on_bad_file,
        )  # fmt: skip
    else:
        items = list(inputs or [])
        if modality != "text":
            keep = check_files(items, None, "the command line", modality, on_bad_file)
            items = [items[i] for i in keep]
    explanations = fitted.explain(items, target=target, method=method, steps=steps)
    if html_path is not None:
        _write_atomically(html_path, explain_html(explanations))
    if json_path is not None:
        _write_atomically(json_path, json.dumps([e.to_dict() for e in explanations], indent=2) + "\n")
    _show(explanations, top)
    for path in (html_path, json_path):
        if path is not None:
            err.print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)


def _show(explanations, top: int) -> None:
    table = Table(title="why the model predicted this", title_justify="left")
    for column in ("input", "prediction", "explained", "p", "method", "delta", f"top {top} (attribution)"):
        table.add_column(column, overflow="fold")
    for e in explanations:
        shown = e.input if len(e.input) <= 60 else e.input[:57] + "..."
        prediction = "|".join(map(str, e.prediction)) if isinstance(e.prediction, list) else str(e.prediction)
        if isinstance(e.prediction, float):
            prediction = f"{e.prediction:.4g}"
        table.add_row(
            escape(shown), escape(prediction), e.target if e.target is not None else "value",
            "" if e.probability is None else f"{e.probability:.3f}", e.method,
            "" if e.delta is None else f"{e.delta:+.4f}",
            escape(", ".join(f"{name} {value:+.3f}" for name, value in e.top(top))),
        )  # fmt: skip
    out.print(table)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` aside and rename it into place, so ``path`` is either complete or untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
