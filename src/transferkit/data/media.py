"""Inputs that are files (images, audio): which modality, which column holds the paths, folders of class
sub-folders, and checking that every file can be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferkit.errors import DataError
from transferkit.progress import say

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
MEDIA_SUFFIXES = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}  # modalities whose inputs are files
PATH_COLUMN_NAMES = ("path", "image", "image_path", "audio", "audio_path", "file", "filename", "file_name", "img")


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


def _media_paths(values: pd.Series) -> str | None:
    """ "image" or "audio" when every value is a file name with that kind of suffix; None otherwise."""
    strings = values.dropna()
    if not len(strings) or not strings.map(lambda v: isinstance(v, str)).all():
        return None
    for modality, suffixes in MEDIA_SUFFIXES.items():
        if strings.str.lower().str.endswith(suffixes).all():
            return modality
    return None


def detect_modality(frame: pd.DataFrame, text_col: str | None, exclude=()) -> str:
    """The media kind of the input column (given, or any column when not), or "text"."""
    columns = [text_col] if text_col in frame.columns else [c for c in frame.columns if c not in exclude]
    kinds = [kind for kind in (_media_paths(frame[c]) for c in columns) if kind]
    return kinds[0] if kinds else "text"


def path_column(frame: pd.DataFrame, source: str, modality: str, exclude=()) -> str:
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
