"""Read CSV / TSV / JSONL / Parquet tables, find the text and label columns, and check them."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferkit.data.media import MEDIA_SUFFIXES, check_files, detect_modality, media_folder_table, path_column
from transferkit.datasets import BUILTIN_DATASETS, load_builtin
from transferkit.errors import DataError
from transferkit.progress import say

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
TEXT_NAMES = ("text", "sentence", "content", "body", "message", "review", "comment", "document", "email", "tweet")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "intent", "tags", "tag", "y")
TASKS = ("classification", "multilabel", "regression")
MODALITIES = ("text", "image", "audio")
ON_BAD_FILE = ("fail", "skip")
_INTEGRAL_DECIMAL = re.compile(r"[+-]?\d+\.0*")  # a whole number written with a decimal point: "1.0", "-2."


@dataclass
class LabeledData:
    """Inputs (texts, or image / audio file paths) with their labels, as read from a file.

    Attributes:
        inputs: One input per row: a text, or the path of an image or audio file.
        y: Labels: strings for classification, floats for regression, lists of strings for multi-label.
        task: "classification", "multilabel" or "regression".
        text_col: The column the inputs were read from.
        label_col: The column the labels were read from.
        source: How the data are called in messages (the file name, or "the data").
        extra: ``modality`` ("image" or "audio") for media data; nothing for texts.
    """

    inputs: list[Any]
    y: list[Any]
    task: str
    text_col: str
    label_col: str
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz"):
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _check_utf8(path: Path) -> None:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path} line {line} is not valid UTF-8 (byte 0x{raw[error.start]:02x}); "
            "re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv"
        ) from None


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a data file (or a built-in data set by name) into a DataFrame.

    Raises:
        DataError: Missing, empty, unreadable or non-UTF-8 file, or an unknown format.
    """
    name = str(source)
    path = Path(name).expanduser()
    if not path.exists():
        if name in BUILTIN_DATASETS:
            return load_builtin(name)
        builtin = ", ".join(BUILTIN_DATASETS)
        raise DataError(
            f"data file {name!r} does not exist; pass a CSV/TSV/JSONL/Parquet file or a built-in data set ({builtin})"
        )
    if path.is_dir():
        return media_folder_table(path)
    kind = _format_of(path)
    if kind is None:
        raise DataError(f"{name!r} has an unknown format; use one of {', '.join(sorted(FORMATS))} (optionally .gz)")
    if path.stat().st_size == 0:
        raise DataError(f"data file {name!r} is empty; it needs a header row and at least two labeled rows")
    compressed = path.suffix.lower() in (".gz", ".bz2", ".zip", ".xz")
    if kind != "parquet" and not compressed:
        _check_utf8(path)
    try:
        if kind == "csv":
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""], encoding="utf-8")
        elif kind == "tsv":
            frame = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], encoding="utf-8")
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as error:
        raise DataError(f"{name!r} is not valid UTF-8 ({error.reason}); re-save the file as UTF-8") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"could not read {name!r} as {kind.upper()}: {message}") from None
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"data file {name!r} has no rows; it needs a header row and labeled rows")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _pick(frame: pd.DataFrame, given: str | None, names: tuple[str, ...], what: str, source: str, exclude=()) -> str:
    columns = list(frame.columns)
    if given is not None:
        if given not in columns:
            raise DataError(f"column {given!r} is not in {source}; its columns are: {', '.join(columns)}")
        return given
    lowered = {column.lower(): column for column in columns if column not in exclude}
    for candidate in names:
        if candidate in lowered:
            return lowered[candidate]
    return ""


def _input_column(frame: pd.DataFrame, given: str | None, source: str, exclude=()) -> str:
    """The column of inputs: the one given, one with a usual text name, or the one with the longest strings."""
    column = _pick(frame, given, TEXT_NAMES, "text", source, exclude)
    if column:
        return column
    textual = [c for c in frame.columns if c not in exclude and frame[c].map(lambda v: isinstance(v, str)).mean() > 0.9]
    if not textual:
        raise DataError(f"found no text column in {source} (columns: {', '.join(frame.columns)}); pass --text-col")
    return max(textual, key=lambda c: frame[c].astype(str).str.len().mean())


def infer_task(labels: pd.Series) -> str:
    """Guess the task from label values: lists -> multilabel, non-integer or many numbers -> regression."""
    values = labels.dropna()
    if len(values) and values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).all():
        return "multilabel"
    numeric = pd.to_numeric(values, errors="coerce")
    if len(values) and numeric.notna().all() and not values.map(lambda v: isinstance(v, bool | np.bool_)).any():
        non_integer = (numeric != numeric.round()).any()
        if non_integer or numeric.nunique() > 30:
            return "regression"
    return "classification"


def _row_list(mask: pd.Series) -> str:
    """'1 row (3) has' / '2 rows (3, 7) have': data rows counted from 1, header excluded."""
    rows = (np.flatnonzero(mask.to_numpy()) + 1).tolist()
    shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return f"1 row ({shown}) has" if len(rows) == 1 else f"{len(rows)} rows ({shown}) have"


def _check_inputs(inputs: pd.Series, column: str, source: str) -> list[str]:
    """The inputs (texts or file paths) as strings; an empty cell is an error naming its rows."""
    missing = inputs.isna() | inputs.map(lambda v: str(v).strip() == "")
    if missing.any():
        raise DataError(
            f"{source}: {_row_list(missing)} an empty text in column {column!r}; fill them in or drop those rows"
        )
    return inputs.astype(str).tolist()


def load_labeled(
    source: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    task: str | None = None,
    label_sep: str = "|",
    min_classes: int = 2,
    name: str | None = None,
    modality: str | None = None,
    on_bad_file: str = "fail",
) -> LabeledData:
    """Read labeled texts (or images, or audio clips) and check them.

    Args:
        source: A data file, a built-in data set name, or a DataFrame.
        text_col: Column of inputs (texts, or image / audio file paths); detected when None.
        label_col: Column of labels; detected by name when None.
        task: "classification", "multilabel" or "regression"; inferred from the labels when None.
        label_sep: Separator of several labels in one string cell, for multi-label data.
        min_classes: Classes needed (2 for training; 1 for evaluating on a one-class test set).
        name: How to call the data in messages (defaults to the file name).
        modality: "text", "image" or "audio"; None detects it (a folder of image or audio files, or a column
            of such file paths).
        on_bad_file: Image or audio files that are missing or unreadable: "fail" (one error naming them) or
            "skip" (drop those rows and say which).

    Raises:
        DataError: Unknown columns, missing labels, empty texts, bad images, or a single class.
    """
    frame = source if isinstance(source, pd.DataFrame) else read_table(source)
    builtin = (
        BUILTIN_DATASETS.get(str(source))
        if not isinstance(source, pd.DataFrame) and not Path(str(source)).exists()
        else None
    )
    name = name or ("the data" if isinstance(source, pd.DataFrame) else str(source))
    if builtin:
        text_col = text_col or builtin["text_col"]
        label_col = label_col or builtin["label_col"]
    _check_choice(modality, MODALITIES, "modality", allow_none=True)
    _check_choice(on_bad_file, ON_BAD_FILE, "on_bad_file")
    folder = frame.attrs.get("modality") in MEDIA_SUFFIXES
    if folder and modality not in (None, frame.attrs["modality"]):
        kind = frame.attrs["modality"]
        raise DataError(f"{name} is a folder of {kind} files, not {modality}; drop --modality or pass {kind}")
    if folder:
        if "label" not in frame.columns or frame["label"].isna().any():
            loose = frame["path"] if "label" not in frame.columns else frame.loc[frame["label"].isna(), "path"]
            loose = ", ".join(Path(p).name for p in loose[:3])
            raise DataError(
                f"{name}: files must sit in one sub-folder per class ({Path(name).name}/<class>/<file>); "
                f"found files outside them ({loose})"
            )
        text_col, label_col = "path", "label"
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    label = _pick(frame, label_col, LABEL_NAMES, "label", name)
    modality, text_col = _input_modality(frame, name, text_col, modality, exclude=(label,))
    text = _input_column(frame, text_col, name, exclude=(label,))
    if not label:
        others = [c for c in frame.columns if c != text]
        if len(others) != 1:
            raise DataError(
                f"cannot tell which column of {name} holds the labels ({', '.join(others)}); pass --label-col"
            )
        label = others[0]
    if label == text:
        raise DataError(f"the text and label columns are both {text!r}; pass different --text-col and --label-col")
    labels = frame[label]
    missing = labels.map(_no_label)
    if missing.any():
        raise DataError(f"{name}: {_row_list(missing)} no label in column {label!r}; fill them in or drop those rows")
    inputs = _check_inputs(frame[text], text, name)
    if modality in MEDIA_SUFFIXES:
        keep = _readable(inputs, source, frame, name, modality, on_bad_file)
        inputs, labels = [inputs[i] for i in keep], labels.iloc[keep]
        if not inputs:
            raise DataError(f"{name}: no readable {modality} files are left; check the paths")
    task = task or infer_task(labels)
    y = _parse_labels(labels, task, label_sep, label, name, min_classes)
    extra = {"modality": modality} if modality != "text" else {}
    return LabeledData(inputs=inputs, y=y, task=task, text_col=text, label_col=label, source=name, extra=extra)


def _no_label(value: Any) -> bool:
    """Whether a label cell is empty: None, NaN, pandas' NA (nullable Parquet / Arrow columns) or blank text."""
    if isinstance(value, str):
        return not value.strip()
    return not isinstance(value, list | tuple | np.ndarray | dict) and bool(pd.isna(value))


def _parse_labels(labels: pd.Series, task: str, sep: str, column: str, source: str, min_classes: int) -> list[Any]:
    if task == "regression":
        numeric = pd.to_numeric(labels, errors="coerce")
        if numeric.isna().any():
            raise DataError(f"{source}: {_row_list(numeric.isna())} a non-numeric {column!r}; regression needs numbers")
        return numeric.astype(float).tolist()
    if task == "multilabel":
        parsed = [_as_label_list(value, sep) for value in labels]
        if len({label for row in parsed for label in row}) < 2:
            raise DataError(f"{source}: column {column!r} names fewer than two labels; multi-label needs at least two")
        return parsed
    values = [_label_str(value) for value in labels]
    classes = sorted(set(values))
    if len(classes) < min_classes:
        raise DataError(
            f"{source}: column {column!r} has a single class ({classes[0]!r}); classification needs at least two"
        )
    if min_classes >= 2:  # data to train on; a test set may well hold one example of a class
        _warn_single_examples(values, column, source)
    return values


def _warn_single_examples(values: list[str], column: str, source: str) -> None:
    """Say which classes have one example: such a class cannot be both learned and tested (a held-out split or
    cross-validation puts it on one side only), and it is often a typo or a second spelling of another class."""
    from rich.markup import escape

    single = sorted(label for label, count in Counter(values).items() if count == 1)
    if not single:
        return
    shown = ", ".join(map(repr, single[:5])) + (f", ... ({len(single)} in all)" if len(single) > 5 else "")
    classes, rows = (f"{len(single)} classes have", "those rows") if len(single) > 1 else ("1 class has", "that row")
    say(
        escape(
            f"warning: {source}: {classes} a single example in column {column!r} ({shown}); a class needs two, "
            f"one to learn from and one to test on: add examples or drop {rows}"
        )
    )


def _label_str(value: Any) -> str:
    """The class name of a label cell, one spelling per class: 1, 1.0, "1" and " 1.0 " are all "1".

    A column that mixes numbers and words (1, 3, cat) arrives as numbers and strings (JSONL, DataFrames) or as
    strings only (CSV, where a spreadsheet may have written the number 1 as "1.0"); without one spelling the
    same class would be split in two, each with a few examples.
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    if _INTEGRAL_DECIMAL.fullmatch(text):
        return str(int(text.partition(".")[0]))  # "1.0" -> "1", as pandas spells a whole number it parsed
    return text


def _as_label_list(value: Any, sep: str) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return sorted({_label_str(v) for v in value})
    text = str(value).strip()
    if text.startswith("["):
        try:
            return sorted({_label_str(v) for v in json.loads(text)})
        except json.JSONDecodeError:
            pass
    return sorted({_label_str(part) for part in text.split(sep) if part.strip()})


def load_inputs(
    source: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    modality: str | None = None,
    on_bad_file: str = "fail",
    remembered_col: str | None = None,
) -> tuple[list[str], pd.DataFrame, str]:
    """Read the inputs to predict on: texts, or image / audio file paths.

    Args:
        source: A data file, a built-in data set name, a folder of media files, or a DataFrame.
        text_col: Column of inputs; detected when None.
        modality: "text", "image" or "audio"; None detects it.
        on_bad_file: Unreadable image or audio files: "fail" (one error naming them) or "skip" (their rows are
            dropped from the table too).
        remembered_col: The column a model was trained on, used when the table has it.

    Returns:
        (inputs, the table, the input column).

    Raises:
        DataError: Unknown columns, empty inputs, or bad files with ``on_bad_file="fail"``.
    """
    frame = source if isinstance(source, pd.DataFrame) else read_table(source)
    if text_col is None and remembered_col in frame.columns:
        text_col = remembered_col
    name = "the data" if isinstance(source, pd.DataFrame) else str(source)
    builtin = BUILTIN_DATASETS.get(name) if not isinstance(source, pd.DataFrame) and not Path(name).exists() else None
    _check_choice(modality, MODALITIES, "modality", allow_none=True)
    _check_choice(on_bad_file, ON_BAD_FILE, "on_bad_file")
    if frame.attrs.get("modality") in MEDIA_SUFFIXES:
        text_col, modality = "path", None  # a folder listing: its own kind of file, in its path column
    modality, text_col = _input_modality(frame, name, text_col, modality)
    column = _input_column(frame, text_col or (builtin or {}).get("text_col"), name)
    inputs = _check_inputs(frame[column], column, name)
    if modality in MEDIA_SUFFIXES:
        keep = _readable(inputs, source, frame, name, modality, on_bad_file)
        inputs, frame = [inputs[i] for i in keep], frame.iloc[keep].reset_index(drop=True)
    return inputs, frame, column


def _input_modality(
    frame: pd.DataFrame, source: str, text_col: str | None, modality: str | None, exclude=()
) -> tuple[str, str | None]:
    """The modality (a folder listing's own, the one given, or detected from the columns) and the input column
    (for image / audio tables without one given: the column of file paths)."""
    if frame.attrs.get("modality") in MEDIA_SUFFIXES:
        return modality or frame.attrs["modality"], text_col
    modality = modality or detect_modality(frame, text_col, exclude=exclude)
    if modality in MEDIA_SUFFIXES:
        text_col = text_col or path_column(frame, source, modality, exclude=exclude)
    return modality, text_col


def _readable(
    paths: list[str], source: Any, frame: pd.DataFrame, name: str, modality: str, on_bad_file: str
) -> list[int]:
    """:func:`check_files` with the containment rule of tables: paths inside the data file's folder (a folder
    listing and an in-memory DataFrame have none)."""
    listing = frame.attrs.get("modality") in MEDIA_SUFFIXES
    base = None if listing or isinstance(source, pd.DataFrame) else Path(str(source)).expanduser().parent
    return check_files(paths, base, name, modality, on_bad_file)


def _check_choice(value: str | None, choices: tuple[str, ...], what: str, allow_none: bool = False) -> None:
    if not (value in choices or (allow_none and value is None)):
        raise DataError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
