"""Dataset folders (``labels.csv`` + images + masks) read into a validated manifest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .layouts import LAYOUTS, DatasetLayout, detect_layout
from .tables import TableError, read_table

REQUIRED_COLUMNS = ("image_id", "label", "image")
MASK_COLUMNS = {"lesion": "lesion_mask", "liver": "liver_mask", "infection": "infection_mask", "sector": "sector_mask"}
OPTIONAL_COLUMNS = ("patient_id", "slice_index", "phase", "centre", "date")
COLUMN_ALIASES = {
    "id": "image_id", "path": "image", "file": "image", "image_path": "image", "patient": "patient_id",
    "center": "centre", "site": "centre", "mask": "lesion_mask", "mass_mask": "lesion_mask",
    "study_date": "date", "slice": "slice_index",
}


class ManifestError(ValueError):
    """A dataset folder's ``labels.csv`` is not usable; names the file, row and column."""

    def __init__(self, path: Path, reason: str, *, row: int | None = None, column: str | None = None) -> None:
        self.path, self.row, self.column, self.reason = path, row, column, reason
        where = "".join([f", row {row}" if row is not None else "", f", column {column!r}" if column else ""])
        super().__init__(f"{path}{where}: {reason}")


@dataclass(frozen=True)
class Manifest:
    """One row per image of a dataset folder.

    ``frame`` has the canonical columns ``image_id, patient_id, label, image`` (absolute path),
    the mask columns present (absolute paths or ``None``), ``slice_index`` (Int64, 0 = most
    superior), ``phase``, ``centre``, ``date`` where given, plus every extra column of the CSV
    (possible clinical factors). ``row`` numbers in problems are CSV line numbers (header = 1).
    """

    root: Path
    frame: pd.DataFrame
    layout: DatasetLayout
    problems: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())
    lines: tuple[int, ...] = field(default=())  # labels.csv line number of each row (blank lines counted)

    def __len__(self) -> int:
        return len(self.frame)

    def line(self, position: int) -> int:
        """The labels.csv line number (header = 1, blank lines counted) of row ``position`` of ``frame``."""
        return self.lines[position] if len(self.lines) == len(self.frame) else position + 2

    @property
    def mask_kinds(self) -> list[str]:
        """Mask kinds (``lesion``, ``liver``, ``infection``, ``sector``) with a column here."""
        return [kind for kind, col in MASK_COLUMNS.items() if col in self.frame.columns]

    @property
    def extra_columns(self) -> list[str]:
        """Columns beyond the canonical ones (kept: they may be clinical factors)."""
        known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(MASK_COLUMNS.values())
        return [c for c in self.frame.columns if c not in known]

    def subset(self, mask: pd.Series | list[bool]) -> "Manifest":
        """A manifest with only the selected rows (index reset)."""
        kept = self.frame[mask]  # the frame's index is its row positions (always reset)
        return Manifest(self.root, kept.reset_index(drop=True), self.layout, self.problems, self.warnings,
                        tuple(self.line(int(i)) for i in kept.index))

    def require_files(self, other_fix: str = "") -> None:
        """Raise :class:`ManifestError` if any listed image or mask file of these rows is missing; ``other_fix``
        is one more way out the message offers (e.g. ``--skip-bad to train on the rest``)."""
        missing = _missing_files(self.frame, self.root, [self.line(i) for i in range(len(self.frame))])
        if missing:
            fix = f", or {other_fix}" if other_fix else ""
            raise ManifestError(self.root / "labels.csv", "; ".join(missing) + " (put the files there, or remove "
                                f"those rows or correct their paths{fix})")


def _resolve(root: Path, value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
        return None
    text = str(value).strip()
    if "\\" in text and not (root / text).exists():  # written on Windows: images\\a.png
        text = text.replace("\\", "/")
    path = Path(text)
    return str(path if path.is_absolute() else (root / path))


def _canonical_columns(columns: list[str]) -> dict[str, str]:
    """Renames for known column names written in another case (``Image_ID``, ``Label``) and for aliases."""
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *MASK_COLUMNS.values()}
    renames: dict[str, str] = {}
    for column in columns:
        name = column.lower()
        name = COLUMN_ALIASES.get(name, name) if name not in known else name
        if name in known and name != column and name not in columns and name not in renames.values():
            renames[column] = name
    return renames


def _label_spellings(task: str | None) -> dict[str, str]:
    """Lower-case label → the spelling the task (or, without one, any task) knows; labels whose lower case
    is shared by two spellings (``normal`` / ``Normal``) are left out."""
    from .summary import known_labels

    tasks = [task] if task else sorted({layout.task for layout in LAYOUTS if layout.task})
    spellings: dict[str, set[str]] = {}
    for name in tasks:
        for label in known_labels(name):
            spellings.setdefault(label.lower(), set()).add(label)
    return {low: next(iter(names)) for low, names in spellings.items() if len(names) == 1}


def _canonical_labels(frame: pd.DataFrame, task: str | None) -> str | None:
    """Rewrite labels that differ from a known label only in case (``MALIGNANT`` → ``malignant``) in place;
    a warning listing them, or None."""
    spellings = _label_spellings(task)
    labels = frame["label"].astype(str)
    fixed = labels.map(lambda v: spellings.get(v.lower(), v))
    changed = labels != fixed
    if not changed.any():
        return None
    frame["label"] = fixed
    pairs = sorted({f"{a!r} → {b!r}" for a, b in zip(labels[changed], fixed[changed])})
    return f"{int(changed.sum())} label(s) read in the spelling the task knows: {', '.join(pairs[:10])}"


def outside_folder(root: Path, path: str | None) -> bool:
    """True when ``path`` (absolute, as resolved by the manifest) lies outside ``root`` (lexically:
    ``../`` and absolute paths elsewhere are outside; symlinks inside the folder are fine)."""
    if path is None:
        return False
    return not os.path.normpath(path).startswith(os.path.join(os.path.normpath(root), ""))


def load_manifest(folder: str | Path, *, check_files: bool = True, outside_ok: bool = False,
                  duplicates_ok: bool = False) -> Manifest:
    """Read ``folder/labels.csv`` into a validated :class:`Manifest`.

    labels.csv may be comma-, semicolon- or tab-separated, with or without a UTF-8 byte-order mark, CRLF or
    LF line ends (:func:`lesiondx.data.tables.read_table`); known column names in any case (``Image_ID``);
    spaces around cells are dropped; a label that differs from one the folder's task knows only in case
    (``MALIGNANT``) is read in the task's spelling, with a warning; ``images\\a.png`` (Windows) is
    ``images/a.png`` when no file has the backslash in its name.

    Hard errors (:class:`ManifestError`): no labels.csv, an empty file, text that is not UTF-8, a required
    column missing, a ``*_mask`` column that is not a known mask kind (a misspelling), no rows, an empty
    ``image_id``/``label``/``image`` cell, a duplicate ``image_id``, a non-integer ``slice_index``, a
    file path outside the folder (``../x.png``, ``/etc/x``; listed in ``problems`` instead with
    ``outside_ok``; every duplicate ``image_id`` with its row, with ``duplicates_ok``, so that a summary lists
    them beside the folder's other problems). Missing image or mask files are listed in ``Manifest.problems``; a missing or
    partial patient_id column in ``Manifest.warnings``, so that a summary can report them.
    """
    root = Path(folder).resolve()
    csv_path = root / "labels.csv"
    if not root.is_dir():
        raise ManifestError(root, "not a folder")
    if not csv_path.is_file():
        raise ManifestError(csv_path, "labels.csv not found (a dataset folder needs labels.csv + images)")
    if csv_path.stat().st_size == 0:
        raise ManifestError(csv_path, f"labels.csv is empty (it needs a header with {', '.join(REQUIRED_COLUMNS)} "
                                      "and one row per image)")
    try:
        frame = read_table(csv_path, as_text=True)
    except TableError as exc:
        raise ManifestError(csv_path, str(exc).removeprefix(f"{csv_path}: ")) from None
    lines = frame.attrs.get("lines") or tuple(range(2, len(frame) + 2))  # file line of each row position
    frame = frame.rename(columns=_canonical_columns(list(frame.columns)))
    frame = frame.apply(lambda col: col.str.strip())  # "Malignant " is "Malignant"; spaces inside are kept
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise ManifestError(csv_path, f"required column missing (have: {', '.join(frame.columns)})", column=column)
    unknown_masks = [c for c in frame.columns if c.endswith("_mask") and c not in MASK_COLUMNS.values()]
    if unknown_masks:  # a misspelt mask column would otherwise be kept as a clinical factor, its masks unused
        raise ManifestError(csv_path, f"unknown mask column (known: {', '.join(MASK_COLUMNS.values())})",
                            column=unknown_masks[0])
    if frame.empty:
        raise ManifestError(root, "labels.csv has no rows (a header only)")
    problems: list[str] = []
    warnings: list[str] = []
    for column in REQUIRED_COLUMNS:
        empty = frame.index[frame[column].str.strip() == ""]
        if len(empty):
            raise ManifestError(csv_path, "empty value", row=lines[int(empty[0])], column=column)
    duplicated = frame.index[frame["image_id"].duplicated()]
    if len(duplicated) and not duplicates_ok:
        row = int(duplicated[0])
        raise ManifestError(csv_path, f"duplicate image_id {frame.at[row, 'image_id']!r}", row=lines[row], column="image_id")
    if len(duplicated):
        shown = ", ".join(f"row {lines[int(i)]} {frame.at[i, 'image_id']!r}" for i in duplicated[:MISSING_SHOWN])
        more = f" and {len(duplicated) - MISSING_SHOWN} more" if len(duplicated) > MISSING_SHOWN else ""
        problems.append(f"{csv_path}, column 'image_id': {len(duplicated)} duplicate image_id(s): {shown}{more}")
    if "patient_id" not in frame.columns:
        warnings.append("no patient_id column: each image is treated as its own patient")
        frame["patient_id"] = frame["image_id"]
    else:
        blank = frame["patient_id"].str.strip() == ""
        if blank.any():
            warnings.append(f"{int(blank.sum())} rows without patient_id (first: row {lines[int(frame.index[blank][0])]}); image_id used")
            frame.loc[blank, "patient_id"] = frame.loc[blank, "image_id"]
    if "slice_index" in frame.columns:
        numbers = pd.to_numeric(frame["slice_index"].replace("", None), errors="coerce")
        bad = frame.index[(frame["slice_index"] != "") & (numbers.isna() | (numbers % 1 != 0))]
        if len(bad):
            row = int(bad[0])
            raise ManifestError(csv_path, f"not an integer: {frame.at[row, 'slice_index']!r}", row=lines[row], column="slice_index")
        frame["slice_index"] = numbers.astype("Int64")
    frame["image"] = [_resolve(root, v) for v in frame["image"]]
    for column in MASK_COLUMNS.values():
        if column in frame.columns:
            frame[column] = [_resolve(root, v) for v in frame[column]]
    for column in ("image", *MASK_COLUMNS.values()):
        if column not in frame.columns:
            continue
        outside = [i for i, p in enumerate(frame[column]) if outside_folder(root, p)]
        if outside and not outside_ok:
            raise ManifestError(csv_path, "path outside the dataset folder (paths are relative, inside the folder)",
                                row=lines[outside[0]], column=column)
        if outside:
            first = os.path.relpath(os.path.normpath(frame[column].iloc[outside[0]]), root)
            problems.append(f"{len(outside)} {column} path(s) outside the dataset folder, not read "
                            f"(first: row {lines[outside[0]]}, {first!r})")
    for column in frame.columns:
        if frame[column].dtype == object and column not in ("image", *MASK_COLUMNS.values()):
            frame[column] = frame[column].replace("", None)
    if check_files:
        problems.extend(_missing_files(frame, root, lines))
    layout = detect_layout(frame, root)
    relabelled = _canonical_labels(frame, layout.task)
    if relabelled:
        warnings.append(relabelled)
    frame = layout.normalise(frame, root)
    return Manifest(root=root, frame=frame.reset_index(drop=True), layout=layout, problems=tuple(problems),
                    warnings=tuple(warnings), lines=tuple(lines[int(i)] for i in frame.index))


def as_manifest(source: str | Path | Manifest) -> Manifest:
    """``source`` itself when it is a :class:`Manifest` (e.g. the rows left after excluding bad ones),
    else :func:`load_manifest` of that folder."""
    return source if isinstance(source, Manifest) else load_manifest(source)


MISSING_SHOWN = 20  # missing files (per column) or duplicate ids named, then "and N more"


def _missing_files(frame: pd.DataFrame, root: Path, lines: Sequence[int]) -> list[str]:
    problems: list[str] = []
    for column in ("image", *MASK_COLUMNS.values()):
        if column not in frame.columns:
            continue
        missing = [(i, p) for i, p in enumerate(frame[column])
                   if p is not None and not outside_folder(root, p) and not Path(p).exists()]
        if missing:
            shown = ", ".join(f"row {lines[i]} {os.path.relpath(p, root)}" for i, p in missing[:MISSING_SHOWN])
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            problems.append(f"{len(missing)} {column} file(s) missing: {shown}{more}")
    return problems


__all__ = ["LAYOUTS", "Manifest", "ManifestError", "MASK_COLUMNS", "as_manifest", "load_manifest", "outside_folder"]
