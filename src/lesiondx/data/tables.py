"""CSV tables as people write them: UTF-8 with or without a byte-order mark, comma, semicolon or tab
separators (a spreadsheet's "CSV" in many locales is semicolon-separated with decimal commas), CRLF or
LF line ends, and the empty trailing columns a spreadsheet leaves behind.

One reader for ``labels.csv`` (:mod:`lesiondx.data.manifest`) and for the prediction tables of
``lesiondx report`` / ``stats roc`` / ``compare``; what it cannot read is a :class:`TableError` naming the
file (and the line where it can be told).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

SEPARATORS = (",", ";", "\t")
_SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_UNNAMED = re.compile(r"^Unnamed: \d+$")


class TableError(ValueError):
    """A CSV file that cannot be read as a table; the message names the file."""


def _text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise TableError(f"{path}: the file is empty (it needs a header line and one line per row)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as "
                         "'CSV UTF-8' (in a spreadsheet) or convert it, e.g. iconv -f latin1 -t utf-8") from None


def detect_separator(header: str) -> str:
    """The separator (comma, semicolon or tab) that splits ``header`` (the first line) into the most fields;
    comma when none does."""
    counts = {sep: len(next(csv.reader([header], delimiter=sep), [])) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])  # ties keep the order of SEPARATORS: comma first
    return best if counts[best] > 1 else ","


def separator_name(sep: str) -> str:
    """``"semicolon"`` for ``";"``, etc."""
    return _SEP_NAMES.get(sep, repr(sep))


def read_table(path: str | Path, *, as_text: bool = False) -> pd.DataFrame:
    """Read a CSV file into a DataFrame whatever its separator, BOM or line ends.

    ``as_text``: every cell as a string, empty cells as ``""`` (for ``labels.csv``); otherwise pandas'
    type inference, with decimal commas read as numbers in semicolon-separated files. Header names are
    stripped of surrounding spaces; columns without a name and without a value (trailing separators)
    are dropped; ``frame.attrs["lines"]`` holds each row's line number in the file (see :func:`data_lines`).
    Raises :class:`TableError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: file not found")
    text = _text(path)
    header = next((line for line in text.splitlines() if line.strip()), "")
    sep = detect_separator(header)
    options: dict = {"dtype": str, "keep_default_na": False} if as_text else {"decimal": "," if sep == ";" else "."}
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, skip_blank_lines=True, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TableError(f"{path}: cannot read as a {separator_name(sep)}-separated table ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    empty = [c for c in frame.columns
             if _UNNAMED.match(c) and frame[c].map(lambda v: pd.isna(v) or str(v).strip() == "").all()]
    frame = frame.drop(columns=empty)
    frame.attrs["lines"] = data_lines(text, len(frame))
    return frame


def data_lines(text: str, n_rows: int) -> tuple[int, ...] | None:
    """The file line number (header = its own line, 1-based) of each of the ``n_rows`` data rows pandas read
    with blank lines skipped; ``None`` when they cannot be told (a quoted cell spanning lines)."""
    numbered = [n for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    lines = tuple(numbered[1:])  # the first non-blank line is the header
    return lines if len(lines) == n_rows else None


__all__ = ["SEPARATORS", "TableError", "detect_separator", "read_table", "separator_name"]
