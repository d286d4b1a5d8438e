"""Inputs and outputs in shards: plan an input (one big file or a folder of files) as fixed row ranges, read one
range without reading the rest, write each result shard atomically, and assemble the shards in input order.

A shard is a range of one file: rows of a Parquet file, or a byte range of whole records of a CSV / TSV / JSONL
file (found in one streaming pass that follows quoted fields across lines), so no step holds the whole input.
Result shards are named by their index (``part-000042.parquet``) in a hidden folder next to the output; a rerun
finds the finished ones and skips them, so every row is written exactly once however often a run is cut short.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from transferkit.data.io import FORMATS
from transferkit.errors import DataError

SHARD_FORMAT = "transferkit-shards"
OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Shard:
    """One range of one input file: rows ``[start, stop)`` (Parquet) or bytes ``[start, stop)`` holding whole
    records (text formats, read after the header's ``header`` bytes); ``rows`` records in all."""

    index: int
    path: str
    kind: str
    start: int
    stop: int
    rows: int
    header: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_files(source: str | Path) -> list[Path]:
    """The files of an input: the file itself, or a folder's CSV / TSV / JSONL / Parquet files by name.

    Raises:
        DataError: Missing input, an unknown or compressed format, or a folder without data files.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data {str(source)!r} does not exist; pass a CSV/TSV/JSONL/Parquet file or a folder of them")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    known = [p for p in files if p.suffix.lower() in FORMATS]
    if path.is_dir() and not known:
        raise DataError(f"folder {str(source)!r} holds no CSV/TSV/JSONL/Parquet files")
    for file in files if not path.is_dir() else known:
        if file.suffix.lower() not in FORMATS:
            raise DataError(
                f"{str(file)!r} cannot be read in shards; use uncompressed {', '.join(sorted(FORMATS))} files "
                "(a compressed file cannot be split: decompress it first)"
            )
    return known


def fingerprint(files: list[Path]) -> list[dict[str, Any]]:
    """Name, size and modification time of each input file: a rerun resumes only on the same input."""
    return [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in files]


def plan_shards(files: list[Path], shard_rows: int) -> list[Shard]:
    """Split the inputs into shards of ``shard_rows`` records (never across files), numbered in input order."""
    if shard_rows < 1:
        raise DataError(f"--shard-rows must be >= 1, got {shard_rows}")
    shards: list[Shard] = []
    for file in files:
        kind = FORMATS[file.suffix.lower()]
        ranges = _parquet_ranges(file, shard_rows) if kind == "parquet" else _text_ranges(file, kind, shard_rows)
        for start, stop, rows, header in ranges:
            shards.append(Shard(len(shards), str(file.resolve()), kind, start, stop, rows, header))
    if not shards:
        raise DataError(f"{', '.join(str(f) for f in files)} has no rows to process")
    return shards


def _parquet_ranges(file: Path, shard_rows: int) -> list[tuple[int, int, int, int]]:
    total = pq.ParquetFile(file).metadata.num_rows
    return [(s, min(s + shard_rows, total), min(shard_rows, total - s), 0) for s in range(0, total, shard_rows)]


def _text_ranges(file: Path, kind: str, shard_rows: int) -> list[tuple[int, int, int, int]]:
    """Byte ranges of ``shard_rows`` records. A CSV record ends at a newline outside quotes: quotes inside a
    quoted field are doubled (RFC 4180), so the count of quote characters so far is even exactly there."""
    ranges: list[tuple[int, int, int, int]] = []
    header = 0 if kind == "jsonl" else None
    offset = start = records = 0
    in_quotes = False
    with open(file, "rb") as handle:
        for line in handle:
            offset += len(line)
            if kind != "jsonl":
                in_quotes ^= line.count(b'"') % 2 == 1
                if in_quotes:
                    continue
            if header is None:
                header = start = offset
                continue
            if not line.strip():
                continue
            records += 1
            if records == shard_rows:
                ranges.append((start, offset, records, header))
                start, records = offset, 0
    if records:
        ranges.append((start, offset, records, header or 0))
    return ranges


def read_shard(shard: Shard) -> pd.DataFrame:
    """The rows of one shard, read as :func:`transferkit.data.read_table` reads a whole file."""
    if shard.kind == "parquet":
        source = pq.ParquetFile(shard.path)
        groups, first, position = [], None, 0
        for group in range(source.metadata.num_row_groups):
            size = source.metadata.row_group(group).num_rows
            if position + size > shard.start and position < shard.stop:
                groups.append(group)
                first = position if first is None else first
            position += size
        table = source.read_row_groups(groups).slice(shard.start - first, shard.stop - shard.start)
        return table.to_pandas()
    with open(shard.path, "rb") as handle:
        head = handle.read(shard.header)
        handle.seek(shard.start)
        body = head + handle.read(shard.stop - shard.start)
    try:
        if shard.kind == "jsonl":
            return pd.read_json(io.BytesIO(body), lines=True, dtype=False, encoding="utf-8")
        sep = "\t" if shard.kind == "tsv" else ","
        return pd.read_csv(io.BytesIO(body), sep=sep, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataError(f"could not read rows of {shard.path!r} (bytes {shard.start}-{shard.stop}): {error}") from None


class ShardOutput:
    """The result of a sharded job: shards in ``.<name>.shards/`` next to ``output``, then one file (``output``
    with a data suffix) or a folder of shards (``output`` without one).

    Args:
        output: The file or folder to write.
        job: What produced the shards (inputs' fingerprint, model, settings): shards of another job are
            discarded instead of resumed.
    """

    def __init__(self, output: Path, job: dict[str, Any]) -> None:
        self.output = Path(output)
        suffix = self.output.suffix.lower()
        if suffix and suffix not in OUTPUT_SUFFIXES:
            raise DataError(f"cannot write {suffix}; use .csv, .tsv, .jsonl, .parquet, or a folder name (no suffix)")
        self.suffix = suffix or ".parquet"
        self.folder = self.output.parent / f".{self.output.name}.shards"
        self.job = job

    def resume(self) -> set[int]:
        """Create the shard folder, or reuse it when it holds shards of the same job; the finished indices."""
        plan = self.folder / "job.json"
        if self.folder.exists() and (not plan.is_file() or json.loads(plan.read_text(encoding="utf-8")) != self.job):
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not plan.is_file():
            _atomic_write(plan, lambda target: target.write_text(json.dumps(self.job, indent=2), encoding="utf-8"))
        return {int(p.stem.split("-")[1]) for p in self.folder.glob(f"part-*{self.suffix}")}

    def target(self) -> dict[str, str]:
        """Where workers write: plain values, sent to other processes."""
        return {"folder": str(self.folder), "suffix": self.suffix}

    def finish(self, n_shards: int) -> int:
        """Assemble the shards into ``output`` in input order (atomically) and remove the shard folder.

        Returns:
            The number of rows written.
        """
        parts = [self.folder / f"part-{i:06d}{self.suffix}" for i in range(n_shards)]
        missing = [p.name for p in parts if not p.exists()]
        if missing:
            raise DataError(f"shards {', '.join(missing[:5])} were not written; run the command again to resume")
        if self.output.suffix:
            rows = _atomic_write(self.output, lambda target: _concatenate(parts, target, self.suffix))
            shutil.rmtree(self.folder, ignore_errors=True)
            return rows
        rows = sum(_rows(p, self.suffix) for p in parts)
        manifest = {"format": SHARD_FORMAT, "shards": [p.name for p in parts], "rows": rows}
        (self.folder / "job.json").unlink()
        (self.folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if self.output.exists():
            shutil.rmtree(self.output)
        self.folder.rename(self.output)
        return rows


def write_shard(frame: pd.DataFrame, folder: str, suffix: str, index: int) -> None:
    """Write one result shard atomically: a temporary file renamed into place, so a shard exists whole or not."""
    path = Path(folder) / f"part-{index:06d}{suffix}"
    _atomic_write(path, lambda target: _write_frame(frame, target, suffix))


def _write_frame(frame: pd.DataFrame, target: Path, suffix: str) -> None:
    if suffix == ".parquet":
        frame.to_parquet(target, index=False)
    elif suffix == ".jsonl":
        frame.to_json(target, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(target, sep="\t" if suffix == ".tsv" else ",", index=False)


def _atomic_write(path: Path, write) -> Any:
    temporary = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        result = write(temporary)
        os.replace(temporary, path)
        return result
    finally:
        temporary.unlink(missing_ok=True)


def _rows(path: Path, suffix: str) -> int:
    if suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return len(read_shard_file(path, suffix))


def read_shard_file(path: Path, suffix: str) -> pd.DataFrame:
    """One written result shard as a table."""
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])


def _concatenate(parts: list[Path], target: Path, suffix: str) -> int:
    """Stream the shards into one file; Parquet shards whose inferred types differ get one common schema."""
    rows = 0
    if suffix == ".parquet":
        schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
        schema = schema.remove_metadata()
        with pq.ParquetWriter(target, schema) as writer:
            for part in parts:
                table = pq.read_table(part).select(schema.names).cast(schema)
                writer.write_table(table)
                rows += table.num_rows
        return rows
    with open(target, "wb") as sink:
        for number, part in enumerate(parts):
            with open(part, "rb") as source:
                if suffix != ".jsonl" and number > 0:
                    source.readline()  # each CSV / TSV shard starts with the header
                shutil.copyfileobj(source, sink)
            rows += _rows(part, suffix)
    return rows
