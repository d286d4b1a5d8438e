"""Read CSV / TSV / JSONL / Parquet tables, find the text and label columns, and check them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferkit.datasets import BUILTIN_DATASETS, load_builtin
from transferkit.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
TEXT_NAMES = ("text", "sentence", "content", "body", "message", "review", "comment", "document", "email", "tweet")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "intent", "tags", "tag", "y")
TASKS = ("classification", "multilabel", "regression")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
MEDIA_SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}  # modalities whose inputs are files
PATH_COLUMN_NAMES = ("path", "image", "image_path", "audio", "audio_path", "file", "filename", "file_name", "img")
MODALITIES = ("text", "image", "audio")
ON_BAD_FILE = ("fail", "skip")


@dataclass
class LabeledData:
    """Texts with their labels, as read from a file.

    Attributes:
        texts: One string per row.
        y: Labels: strings for classification, floats for regression, lists of strings for multi-label.
        task: "classification", "multilabel" or "regression".
    """

    texts: list[str]
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


def _text_column(frame: pd.DataFrame, given: str | None, source: str, exclude=()) -> str:
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


def _check_texts(texts: pd.Series, column: str, source: str) -> list[str]:
    missing = texts.isna() | texts.map(lambda v: str(v).strip() == "")
    if missing.any():
        raise DataError(
            f"{source}: {_row_list(missing)} an empty text in column {column!r}; fill them in or drop those rows"
        )
    return texts.astype(str).tolist()


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
        text_col: Column of texts; detected by name or length when None.
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
    text = _text_column(frame, text_col, name, exclude=(label,))
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
    texts = _check_texts(frame[text], text, name)
    if modality in MEDIA_SUFFIXES:
        keep = _readable(texts, source, frame, name, modality, on_bad_file)
        texts, labels = [texts[i] for i in keep], labels.iloc[keep]
        if not texts:
            raise DataError(f"{name}: no readable {modality} files are left; check the paths")
    task = task or infer_task(labels)
    y = _parse_labels(labels, task, label_sep, label, name, min_classes)
    extra = {"modality": modality} if modality != "text" else {}
    return LabeledData(texts=texts, y=y, task=task, text_col=text, label_col=label, source=name, extra=extra)


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
    return values


def _label_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _as_label_list(value: Any, sep: str) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return sorted({_label_str(v) for v in value})
    text = str(value).strip()
    if text.startswith("["):
        try:
            return sorted({_label_str(v) for v in json.loads(text)})
        except json.JSONDecodeError:
            pass
    return sorted({part.strip() for part in text.split(sep) if part.strip()})


def infer_modality(items: list[Any]) -> str:
    """ "image" for 2-d/3-d arrays, PIL images or image files; "audio" for 1-d arrays or audio files; else "text"."""
    if not items:
        return "text"
    first = items[0]
    if isinstance(first, (str, Path)):
        for modality, suffixes in MEDIA_SUFFIXES.items():
            if str(first).lower().endswith(suffixes) and Path(first).is_file():
                return modality
        return "text"
    if isinstance(first, np.ndarray) and first.ndim == 1:
        return "audio"
    return "text" if isinstance(first, bytes) else "image"


def media_folder_table(folder: Path) -> pd.DataFrame:
    """A table of the image or audio files in ``folder``: ``path`` and, for class sub-folders
    (``folder/<class>/<file>``), ``label``; files directly in ``folder`` get no label (for prediction).
    ``attrs["modality"]`` is "image" or "audio", whichever kind of file is in the majority.

    Raises:
        DataError: The folder holds no image or audio files (in it or in its sub-folders).
    """
    suffixes = IMAGE_SUFFIXES + AUDIO_SUFFIXES
    rows = []
    for item in sorted(folder.iterdir()):
        if item.is_dir() and not item.name.startswith("."):
            rows += [(str(f), item.name) for f in sorted(item.iterdir()) if f.suffix.lower() in suffixes]
        elif item.suffix.lower() in suffixes:
            rows.append((str(item), None))
    if not rows:
        raise DataError(
            f"{str(folder)!r} is a folder without images or audio files; for training put them in one sub-folder "
            f"per class ({folder.name}/<class>/<file>), or pass a CSV/TSV/JSONL/Parquet file"
        )
    images = sum(path.lower().endswith(IMAGE_SUFFIXES) for path, _ in rows)
    modality = "image" if images * 2 >= len(rows) else "audio"
    rows = [row for row in rows if row[0].lower().endswith(MEDIA_SUFFIXES[modality])]
    frame = pd.DataFrame(rows, columns=["path", "label"])
    if frame["label"].isna().all():
        frame = frame[["path"]]
    frame.attrs["modality"] = modality
    return frame


def load_texts(
    source: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    modality: str | None = None,
    on_bad_file: str = "fail",
    remembered_col: str | None = None,
) -> tuple[list[str], pd.DataFrame, str]:
    """Read the texts (or image / audio paths) to predict on; returns (inputs, the table, the input column).
    With ``on_bad_file="skip"``, rows of unreadable files are dropped from the table too. ``remembered_col``
    (the column a model was trained on) is used when the table has it; otherwise the column is detected."""
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
    column = _text_column(frame, text_col or (builtin or {}).get("text_col"), name)
    texts = _check_texts(frame[column], column, name)
    if modality in MEDIA_SUFFIXES:
        keep = _readable(texts, source, frame, name, modality, on_bad_file)
        texts, frame = [texts[i] for i in keep], frame.iloc[keep].reset_index(drop=True)
    return texts, frame, column


def _input_modality(
    frame: pd.DataFrame, source: str, text_col: str | None, modality: str | None, exclude=()
) -> tuple[str, str | None]:
    """The modality (a folder listing's own, the one given, or detected from the columns) and the input column
    (for image / audio tables without one given: the column of file paths)."""
    if frame.attrs.get("modality") in MEDIA_SUFFIXES:
        return modality or frame.attrs["modality"], text_col
    modality = modality or _detect_modality(frame, text_col, exclude=exclude)
    if modality in MEDIA_SUFFIXES:
        text_col = text_col or _path_column(frame, source, modality, exclude=exclude)
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


def _media_paths(values: pd.Series) -> str | None:
    """ "image" or "audio" when every value is a file name with that kind of suffix; None otherwise."""
    strings = values.dropna()
    if not len(strings) or not strings.map(lambda v: isinstance(v, str)).all():
        return None
    for modality, suffixes in MEDIA_SUFFIXES.items():
        if strings.str.lower().str.endswith(suffixes).all():
            return modality
    return None


def _detect_modality(frame: pd.DataFrame, text_col: str | None, exclude=()) -> str:
    """The media kind of the input column (given, or any column when not), or "text"."""
    columns = [text_col] if text_col in frame.columns else [c for c in frame.columns if c not in exclude]
    kinds = [kind for kind in (_media_paths(frame[c]) for c in columns) if kind]
    return kinds[0] if kinds else "text"


def _path_column(frame: pd.DataFrame, source: str, modality: str, exclude=()) -> str:
    """The column of file paths: one named like ``path``/``image``/``audio``/``file``, else the one whose values
    are file names of ``modality``."""
    candidates = [c for c in frame.columns if c not in exclude and _media_paths(frame[c]) == modality]
    named = [c for c in candidates if c.lower() in PATH_COLUMN_NAMES]
    if named or candidates:
        return (named or candidates)[0]
    raise DataError(
        f"found no column of {modality} file paths in {source} (columns: {', '.join(frame.columns)}); "
        f"pass --text-col naming it (values ending in {', '.join(MEDIA_SUFFIXES[modality][:3])}, ...)"
    )


def _probe(file: Path, modality: str) -> None:
    """Open ``file`` cheaply (header and structure, not a full decode); raises what the reader raises."""
    if modality == "image":
        from PIL import Image

        with Image.open(file) as image:
            image.verify()
    else:
        import soundfile

        if soundfile.info(str(file)).frames == 0:
            raise ValueError("no samples")


def check_files(
    paths: list[str], base: Path | None, source: str, modality: str = "image", on_bad_file: str = "fail"
) -> list[int]:
    """Resolve image or audio paths and check every file opens; rewrites ``paths`` in place to the resolved
    files and returns the indices of the good ones.

    Args:
        paths: File paths; relative ones are taken inside ``base`` (the data file's folder).
        base: The folder paths must stay inside (None: no containment rule, paths as given).
        on_bad_file: "fail" raises one error naming the bad files; "skip" drops them and says so.

    Raises:
        DataError: A path leaves the data folder (always), or bad files with ``on_bad_file="fail"``.
    """
    from transferkit.progress import say

    root = base.resolve() if base is not None else None
    bad: list[str] = []
    keep: list[int] = []
    for index, value in enumerate(paths):
        file = Path(value).expanduser()
        if root is not None:
            file = (root / file).resolve()
            if not file.is_relative_to(root):
                raise DataError(
                    f"{source}: row {index + 1}: path {value!r} points outside the data folder {str(root)!r}; "
                    "file paths in a table must be inside the folder that holds the table"
                )
        paths[index] = str(file)
        try:
            _probe(file, modality)
        except FileNotFoundError:
            bad.append(f"{value} (does not exist)")
            continue
        except Exception as error:  # Pillow raises many types for broken files
            detail = str(error).splitlines()[0] if str(error) else "unreadable"
            bad.append(f"{value} ({type(error).__name__}: {detail})")
            continue
        keep.append(index)
    if bad and on_bad_file == "fail":
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DataError(
            f"{source}: {len(bad)} of {len(paths)} {modality} files cannot be read: {shown}; fix or remove them, "
            "or pass --on-bad-file skip to leave them out"
        )
    if bad:
        say(f"skipped {len(bad)} unreadable {modality} file(s) of {len(paths)}: {'; '.join(bad[:5])}")
    return keep
