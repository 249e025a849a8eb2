"""Rows of a dataset folder whose files cannot be used, shared by every task's ``evaluate`` and ``train``.

``evaluate``: :func:`screen_rows` runs the task's own row reader (and input gate) on every row; a row that
cannot be read or is refused is *excluded* and listed (:class:`BadRow`), the rest are evaluated, and the
count goes into the headline (``N of M rows excluded (unreadable/refused)``). ``strict=True`` re-raises the
first failure instead. ``train``: :func:`check_training_rows` opens every row's files (a cheap header /
integrity check, :func:`probe_file`) before anything is trained and raises :class:`BadRowsError` listing
every bad file, or with ``skip_bad`` drops those rows and writes them to ``skipped_rows.csv`` in the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .manifest import MASK_COLUMNS, Manifest, outside_folder

FILE_COLUMNS = ("image", *MASK_COLUMNS.values())
LIST_LIMIT = 20  # bad files named in one message; the rest are counted
SKIPPED_FILE = "skipped_rows.csv"


@dataclass(frozen=True)
class BadRow:
    """One row left out: its ``image_id``, the ``file`` at fault (relative to the dataset folder when inside
    it) and the ``reason`` in words; ``row`` is the labels.csv line number (header = 1)."""

    image_id: str
    file: str
    reason: str
    row: int | None = None

    def to_dict(self) -> dict[str, str]:
        return {"image_id": self.image_id, "file": self.file, "reason": self.reason}

    def line(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass(frozen=True)
class Screened:
    """The rows of a manifest that can be used (``manifest``) and those excluded, with the count listed."""

    manifest: Manifest
    excluded: tuple[BadRow, ...]
    n_listed: int  # rows in labels.csv (before exclusion)

    @property
    def headline(self) -> str:
        """``N of M rows excluded (unreadable/refused)``: the first summary line whenever N > 0."""
        return f"{len(self.excluded)} of {self.n_listed} rows excluded (unreadable/refused)"

    def fields(self) -> dict[str, Any]:
        """``excluded`` (image_id, file, reason per row), ``n_excluded`` and ``n_listed`` for metrics.json."""
        return {"excluded": [b.to_dict() for b in self.excluded], "n_excluded": len(self.excluded),
                "n_listed": self.n_listed}

    def note(self) -> str | None:
        """One sentence for the HTML report, or ``None`` when nothing was excluded."""
        if not self.excluded:
            return None
        return (f"{self.headline}; the figures are computed on the other {self.n_listed - len(self.excluded)} "
                f"rows. Excluded: {list_files(self.excluded)}.")


class BadRowsError(ValueError):
    """Rows whose files cannot be used, found before any training ran; names labels.csv and every file."""

    def __init__(self, csv: Path, bad: list[BadRow], n_rows: int, hint: str) -> None:
        self.csv, self.bad, self.n_rows, self.hint = csv, tuple(bad), n_rows, hint
        super().__init__(f"{csv}: {len(bad)} of {n_rows} rows have files that cannot be used; {hint}: "
                         f"{list_files(bad)}")


def list_files(bad: tuple[BadRow, ...] | list[BadRow], limit: int = LIST_LIMIT) -> str:
    """``file: reason; ...`` for the first ``limit`` rows, then ``and N more``."""
    text = "; ".join(b.line() for b in bad[:limit])
    return text + (f"; and {len(bad) - limit} more" if len(bad) > limit else "")


def probe_file(path: str | Path) -> str | None:
    """Open one image or mask file without decoding all of it: ``None`` when readable, else the reason.

    PNG/JPG/...: PIL header plus its integrity check; NIfTI: SimpleITK header; anything else: a DICOM
    dataset with pixel data.
    """
    from PIL import Image

    from lesiondx.io import ImageReadError, read_dataset
    from lesiondx.io.raster import NIFTI_SUFFIXES, RASTER_SUFFIXES

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "file is empty"
        if path.suffix.lower() in RASTER_SUFFIXES:
            with Image.open(path) as img:
                img.verify()
        elif path.name.lower().endswith(NIFTI_SUFFIXES):
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
        else:
            read_dataset(path, pixels=True)
    except ImageReadError as exc:
        return exc.reason
    except Exception as exc:  # PIL, SimpleITK and OS errors: the file cannot be used
        return f"not a readable image ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return None


def relative_name(root: Path, path: str | Path) -> str:
    """``path`` relative to the dataset folder ``root`` when it lies inside it, else as given."""
    return str(Path(path).relative_to(root)) if not outside_folder(root, str(path)) else str(path)


def unreadable_rows(manifest: Manifest, columns: tuple[str, ...] = FILE_COLUMNS) -> list[BadRow]:
    """Every row with an image or mask file (of ``columns``) that exists but cannot be opened
    (:func:`probe_file`), one entry per file, in column then row order (missing and outside files are the
    manifest's problems)."""
    bad = []
    for column in columns:
        if column not in manifest.frame.columns:
            continue
        for row, (image_id, path) in enumerate(zip(manifest.frame["image_id"], manifest.frame[column])):
            if path is None or outside_folder(manifest.root, path) or not Path(path).is_file():
                continue
            reason = probe_file(path)
            if reason is not None:
                bad.append(BadRow(str(image_id), relative_name(manifest.root, path), reason, manifest.line(row)))
    return bad


def missing_rows(manifest: Manifest, columns: tuple[str, ...] = FILE_COLUMNS) -> list[BadRow]:
    """Every row with an image or mask file (of ``columns``) listed but not there, one entry per file, in column
    then row order (paths outside the folder are refused by the manifest)."""
    bad = []
    for column in columns:
        if column not in manifest.frame.columns:
            continue
        for row, (image_id, path) in enumerate(zip(manifest.frame["image_id"], manifest.frame[column])):
            if path is not None and not outside_folder(manifest.root, path) and not Path(path).is_file():
                bad.append(BadRow(str(image_id), relative_name(manifest.root, path), "file not found",
                                  manifest.line(row)))
    return bad


def use_errors() -> tuple[type[BaseException], ...]:
    """What a row reader raises for a file it cannot use (unreadable, refused by the gate, too large)."""
    from zipfile import BadZipFile

    from PIL import Image
    from pydicom.errors import InvalidDicomError

    from lesiondx.io import ImageReadError

    return (ImageReadError, ValueError, OSError, Image.DecompressionBombError, InvalidDicomError, BadZipFile,
            MemoryError)


def bad_row_from(manifest: Manifest, index: int, exc: BaseException) -> BadRow:
    """The :class:`BadRow` for manifest row ``index`` (0-based) that failed with ``exc``: the file the
    error names (an ``ImageReadError``'s path, an ``OSError``'s filename), else the row's image."""
    from lesiondx.io import ImageReadError

    row = manifest.frame.iloc[index]
    if isinstance(exc, ImageReadError):
        path, reason = exc.path, exc.reason
    elif isinstance(exc, OSError) and exc.filename:
        path, reason = Path(exc.filename), exc.strerror or str(exc)
    else:
        path, reason = Path(row["image"]), " ".join(str(exc).split()) or type(exc).__name__
    image = Path(row["image"])
    if str(path).startswith(f"{image}: "):  # readers that put "path: reason" into the path argument
        path, reason = image, str(path)[len(str(image)) + 2:]
    return BadRow(str(row["image_id"]), relative_name(manifest.root, path), reason, manifest.line(index))


def screen_rows(manifest: Manifest, check_row: Callable[[pd.Series], object], *, strict: bool = False,
                group_by: str | list[str] | None = None,
                check_group: Callable[[pd.DataFrame], object] | None = None) -> Screened:
    """Run ``check_row`` (the task's reader, and gate) on every row; rows that raise one of
    :func:`use_errors` are excluded. With ``group_by``/``check_group`` the kept rows of each group (a series)
    are then checked together (the series gate): a failing group excludes all its rows with that reason.
    ``strict``: re-raise the first failure (nothing is excluded)."""
    errors = use_errors()
    frame = manifest.frame
    bad: dict[int, BadRow] = {}
    for index in range(len(frame)):
        try:
            check_row(frame.iloc[index])
        except errors as exc:
            if strict:
                raise
            bad[index] = bad_row_from(manifest, index, exc)
    if check_group is not None and group_by is not None:
        kept = frame.drop(index=list(bad))
        for _, rows in kept.groupby(group_by, sort=True, dropna=False):
            try:
                check_group(rows)
            except errors as exc:
                if strict:
                    raise
                for index in rows.index:
                    bad[int(index)] = bad_row_from(manifest, int(index), exc)
    keep = [i not in bad for i in range(len(frame))]
    return Screened(manifest.subset(keep), tuple(bad[i] for i in sorted(bad)), len(frame))


def no_rows_left(screened: Screened) -> str | None:
    """The one-line reason when every row was excluded (nothing left to evaluate), else ``None``."""
    if len(screened.manifest):
        return None
    return (f"{screened.manifest.root / 'labels.csv'}: all {screened.n_listed} rows excluded "
            f"(unreadable/refused): {list_files(screened.excluded)}")


REFUSES_UNKNOWN_LABELS = ("us-liver", "ct-liver")  # tasks whose train/evaluate stop on an unknown label
# (ct-covid counts every label other than its positive ones as negative, by design)


def unknown_labels(manifest: Manifest, task: str, extra: tuple[str, ...] = ()) -> tuple[list[str], frozenset[str]]:
    """The labels of ``manifest`` that ``task`` (or the task of the folder's layout) does not know
    (:func:`lesiondx.data.summary.known_labels`) and are not in ``extra``, sorted; and the known ones."""
    from .summary import known_labels

    known = known_labels(task) | set(extra)
    if manifest.layout.task and manifest.layout.task != task:
        known |= known_labels(manifest.layout.task)
    return sorted(set(manifest.frame["label"].astype(str)) - known), frozenset(known)


def require_known_labels(manifest: Manifest, task: str, extra: tuple[str, ...] = ()) -> None:
    """:class:`~lesiondx.data.ManifestError` naming labels.csv, the first row and the ``label`` column when a
    label is neither one ``task`` (or the task of the folder's layout) knows
    (:func:`lesiondx.data.summary.known_labels`) nor in ``extra`` (e.g. a configured label tree): a typo such
    as ``Malignant`` would otherwise be dropped or counted silently."""
    from .manifest import ManifestError

    unknown, known = unknown_labels(manifest, task, extra)
    labels = manifest.frame["label"].astype(str)
    if unknown:
        row = manifest.line(int(labels.index[labels.isin(unknown)][0]))
        raise ManifestError(manifest.root / "labels.csv", f"label(s) task {task} does not know: "
                            f"{', '.join(map(repr, unknown[:10]))} (known: {', '.join(sorted(known))}); write those rows' "
                            "labels as known ones in labels.csv (other names, e.g. a diagnosis, are not mapped)",
                            row=row, column="label")


def require_columns(manifest: Manifest, columns: tuple[str, ...], why: str) -> None:
    """:class:`~lesiondx.data.ManifestError` naming labels.csv and the first of ``columns`` it lacks; ``why`` says
    what needs them (e.g. "us-liver train learns its lesion, liver and sector outlines from them")."""
    from .manifest import ManifestError

    missing = [c for c in columns if c not in manifest.frame.columns]
    if missing:
        raise ManifestError(manifest.root / "labels.csv", f"column(s) {', '.join(missing)} missing: {why} "
                            f"(have: {', '.join(c for c in manifest.frame.columns if not c.startswith('_'))})",
                            column=missing[0])


def repeated_image(manifest: Manifest) -> tuple[int, str] | None:
    """``(labels.csv line, reason)`` of the first row whose image file an earlier row lists too (one frame
    counted twice, possibly under two labels or on both sides of a split), else ``None``."""
    images = manifest.frame["image"].astype(str)
    repeated = images.index[images.duplicated()]
    if not len(repeated):
        return None
    second = int(repeated[0])
    first = int(images.index[images == images[second]][0])
    labels, ids = manifest.frame["label"].astype(str), manifest.frame["image_id"].astype(str)
    clash = (f"under two labels ({labels[first]!r}, {labels[second]!r})" if labels[first] != labels[second]
             else f"twice (image_id {ids[first]!r} and {ids[second]!r})")
    return manifest.line(second), (f"{relative_name(manifest.root, images[second])} is listed {clash}, also on row "
                                   f"{manifest.line(first)}: list each image once, with its one label")


def require_one_row_per_image(manifest: Manifest) -> None:
    """:class:`~lesiondx.data.ManifestError` naming labels.csv, the row and the ``image`` column when an image file
    is listed on two rows (:func:`repeated_image`)."""
    from .manifest import ManifestError

    found = repeated_image(manifest)
    if found:
        raise ManifestError(manifest.root / "labels.csv", found[1], row=found[0], column="image")


def require_task_layout(manifest: Manifest, task: str, also: tuple[str, ...] = ()) -> None:
    """:class:`~lesiondx.data.ManifestError` naming labels.csv when the folder's layout is one another task reads
    (an AUL ultrasound folder given to ct-covid, a CT-MD chest-CT folder to us-liver): ``also`` = tasks whose
    folders ``task`` reads too (ct-liver's lesion-type classifier learns from ultrasound lesion crops). A folder of
    no known layout passes (its labels and files are checked on their own)."""
    from .manifest import ManifestError

    owner = manifest.layout.task
    if owner is None or owner == task or owner in also:
        return
    raise ManifestError(manifest.root / "labels.csv", f"this is a {manifest.layout.name} folder "
                        f"({manifest.layout.modality}, read by task {owner}), not one task {task} reads; "
                        f"use --task {owner}, or give a {task} folder")


def check_training_rows(manifest: Manifest, *, skip_bad: bool = False, run_dir: Path | None = None,
                        skipped_name: str = SKIPPED_FILE) -> Manifest:
    """Before training: every listed file must exist (else :class:`~lesiondx.data.ManifestError`, naming each
    missing file with its row) and open (:func:`probe_file`; else :class:`BadRowsError` naming every bad file),
    unless ``skip_bad``: then the rows with a missing or unreadable file are dropped and listed in
    ``run_dir/skipped_name`` (reason ``file not found`` for a missing one)."""
    if not skip_bad:
        manifest.require_files(other_fix="--skip-bad to train on the rest")
    bad = missing_rows(manifest) + unreadable_rows(manifest) if skip_bad else unreadable_rows(manifest)
    if not bad:
        return manifest
    if not skip_bad:
        raise BadRowsError(manifest.root / "labels.csv", bad, len(manifest),
                           "nothing was trained (fix or remove them, or --skip-bad to train on the rest)")
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        pd.DataFrame([{**b.to_dict(), "row": b.row} for b in bad]).to_csv(Path(run_dir) / skipped_name, index=False)
    ids = {b.image_id for b in bad}
    kept = manifest.subset(~manifest.frame["image_id"].astype(str).isin(ids))
    if not len(kept):
        raise BadRowsError(manifest.root / "labels.csv", bad, len(manifest), "no row left to train on")
    return kept


__all__ = ["BadRow", "BadRowsError", "Screened", "check_training_rows", "list_files", "missing_rows", "no_rows_left", "probe_file",
           "repeated_image", "require_columns", "require_known_labels", "require_one_row_per_image", "screen_rows", "unknown_labels", "unreadable_rows", "use_errors"]
