"""Which files a model was trained or tuned on, by content, so that ``evaluate`` can say when its figures are not
an independent test.

A model directory may hold ``training_files.csv`` (columns ``sha256``, ``role``, ``file``): one row per image file
that training or tuning used (``lesiondx train`` writes it; the shipped models carry theirs). ``evaluate`` hashes the
image file of every row it scores and reports the rows found there (:func:`seen_in_training`). Files are matched
by their bytes: a copy under another name is found, a re-encoded or re-exported image is not.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lesiondx.runtime import file_sha256

from .badrows import Screened
from .manifest import Manifest

TRAINING_FILES = "training_files.csv"


def data_hash(folder: str | Path, frame: pd.DataFrame) -> str:
    """sha256 (hex) of ``folder/labels.csv`` and every image's bytes of ``frame`` (the rows used), in row order."""
    import hashlib

    digest = hashlib.sha256()
    labels = Path(folder) / "labels.csv"
    if labels.is_file():
        digest.update(labels.read_bytes())
    for path in frame["image"]:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def write_training_files(model_dir: str | Path, files: Iterable[tuple[str | Path, str]], *, root: str | Path | None = None,
                         append: bool = False) -> Path:
    """Write (or with ``append`` extend) ``model_dir/training_files.csv`` from ``(path, role)`` pairs; ``file`` is
    the path relative to ``root`` (the dataset folder) when given, for people reading the list."""
    target = Path(model_dir) / TRAINING_FILES
    rows = []
    for path, role in files:
        name = Path(path)
        if root is not None:
            try:
                name = name.relative_to(Path(root))
            except ValueError:
                name = Path(path).name
        rows.append({"sha256": file_sha256(path), "role": role, "file": name.as_posix()})
    new = append and target.is_file()
    with open(target, "a" if new else "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sha256", "role", "file"])
        if not new:
            writer.writeheader()
        writer.writerows(rows)
    return target


def image_roles(rows: pd.DataFrame, role: str) -> list[tuple[Path, str]]:
    """``(image file, role)`` for every row of a manifest's frame (for :func:`write_training_files`)."""
    return [(Path(p), role) for p in rows["image"]]


def read_training_files(model_dir: str | Path) -> dict[str, tuple[str, ...]] | None:
    """sha256 → the roles it had, from ``model_dir/training_files.csv``; ``None`` when the model has no list."""
    path = Path(model_dir) / TRAINING_FILES
    if not path.is_file():
        return None
    roles: dict[str, set[str]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            roles.setdefault(row["sha256"], set()).add(row["role"])
    return {digest: tuple(sorted(found)) for digest, found in roles.items()}


@dataclass(frozen=True)
class SeenRows:
    """Rows of an evaluated folder whose image file the model was trained or tuned on."""

    n_rows: int
    image_ids: tuple[str, ...]
    by_role: tuple[tuple[str, int], ...]
    listed: bool  # False: the model has no training_files.csv, nothing could be checked

    @property
    def n_seen(self) -> int:
        return len(self.image_ids)

    @property
    def headline(self) -> str | None:
        """The warning line for the summary and the report, or ``None`` when no row was seen."""
        if not self.n_seen:
            return None
        roles = ", ".join(f"{role} ({n})" for role, n in self.by_role)
        scope = (f"every evaluated row ({self.n_rows}) was" if self.n_seen == self.n_rows
                 else f"{self.n_seen} of {self.n_rows} evaluated rows were")
        return (f"NOT AN INDEPENDENT TEST: {scope} used to train or tune this model (same file content; as "
                f"{roles}); figures on them are optimistic")

    def fields(self) -> dict[str, Any]:
        """The ``seen_in_training`` entry of metrics.json."""
        if not self.listed:
            return {"seen_in_training": {"checked": False,
                                         "note": f"the model has no {TRAINING_FILES}: overlap not checked"}}
        return {"seen_in_training": {"checked": True, "n_rows": self.n_rows, "n_seen": self.n_seen,
                                     "by_role": dict(self.by_role), "image_ids": list(self.image_ids[:50]),
                                     "image_ids_listed": min(self.n_seen, 50)}}


def seen_in_training(model_dir: str | Path | None, manifest: Manifest) -> SeenRows:
    """Which rows of ``manifest`` (its ``image`` files) appear in ``model_dir``'s training list (``None``: a
    model without a directory, nothing to check)."""
    known = read_training_files(model_dir) if model_dir is not None else None
    frame = manifest.frame
    if known is None:
        return SeenRows(len(frame), (), (), listed=False)
    seen, roles = [], Counter()
    for image_id, path in zip(frame["image_id"], frame["image"]):
        found = known.get(file_sha256(path)) if Path(path).is_file() else None
        if found:
            seen.append(str(image_id))
            roles.update(found)
    return SeenRows(len(frame), tuple(seen), tuple(sorted(roles.items(), key=lambda kv: -kv[1])), listed=True)


def lead_lines(seen: SeenRows, screened: Screened, summary: list[str] = ()) -> list[str]:
    """An evaluate summary with its leading lines first: the training-overlap warning, the exclusions and the
    folder's own warnings (relabelled labels, missing patient ids); ``summary``'s repeat of the overlap warning
    as a report note is dropped."""
    lead = [seen.headline] if seen.headline else []
    lead += [screened.headline] if screened.excluded else []
    lead += [f"labels.csv: {warning}" for warning in screened.manifest.warnings]
    return lead + [line for line in summary if not (seen.headline and line == f"note: {seen.headline}")]


def report_notes(seen: SeenRows, screened: Screened) -> tuple[str, ...]:
    """The report's notes on what was scored: the exclusions and the training-overlap warning, when there are."""
    return tuple(note for note in (screened.note(), seen.headline) if note)
