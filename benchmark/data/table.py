"""Reading delimited files with errors that name the file, line, column and value."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmark.errors import DataError


def read_table(
    path: Path,
    *,
    sep: str = ",",
    names: Sequence[str] | None = None,
    columns: Sequence[str] = (),
    integer_columns: Sequence[str] = (),
    float_columns: Sequence[str] = (),
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited text file (optionally .gz/.xz/.bz2/.zip compressed) into a frame of strings
    converted where asked.

    `names` gives column names for a headerless file; otherwise the first line is the header.
    `columns` are required (a missing one raises DataError listing what the file has). Integer and
    float columns are parsed strictly: the first bad or missing value raises DataError with its line
    number. A multi-character `sep` (MovieLens `::`) is supported.
    """
    header_lines = 0 if names is not None else 1
    source: Path | io.BytesIO = path
    effective_sep = sep
    if len(sep) > 1:
        raw = _read_bytes(path)
        source, effective_sep = io.BytesIO(raw.replace(sep.encode(), b"\x1f")), "\x1f"
    try:
        frame = pd.read_csv(
            source,
            sep=effective_sep,
            header=None if names is not None else 0,
            names=list(names) if names is not None else None,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=encoding,
            compression="infer" if isinstance(source, Path) else None,
            quoting=csv.QUOTE_NONE if sep != "," else csv.QUOTE_MINIMAL,
        )
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: cannot parse ({error})") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the file has columns {list(frame.columns)}")
    for column in columns:
        _reject_missing(frame, column, path, header_lines)
    for column in integer_columns:
        frame[column] = _to_number(frame, column, path, header_lines, integer=True)
    for column in float_columns:
        frame[column] = _to_number(frame, column, path, header_lines, integer=False)
    return frame


def _read_bytes(path: Path) -> bytes:
    import bz2
    import gzip
    import lzma

    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    try:
        with openers.get(path.suffix, open)(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def _reject_missing(frame: pd.DataFrame, column: str, path: Path, header_lines: int) -> None:
    missing = frame[column].isna().to_numpy()
    if missing.any():
        row = int(missing.argmax())
        raise DataError(f"{path}: line {row + 1 + header_lines}, column '{column}': value is missing "
                        f"(row {frame.iloc[row].tolist()})")


def _to_number(frame: pd.DataFrame, column: str, path: Path, header_lines: int, *, integer: bool) -> pd.Series:
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if integer:
        bad = bad | (numbers.fillna(0) % 1 != 0).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        kind = "an integer" if integer else "a number"
        raise DataError(f"{path}: line {row + 1 + header_lines}, column '{column}': "
                        f"value {values.iloc[row]!r} is not {kind}")
    return numbers.astype("int64") if integer else numbers.astype("float64")
