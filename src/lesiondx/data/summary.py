"""``lesiondx data summary``: counts a researcher checks before using a dataset folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .manifest import MASK_COLUMNS, Manifest, ManifestError, load_manifest


@dataclass(frozen=True)
class DatasetSummary:
    """Counts for one dataset folder (the JSON of ``data summary --json``)."""

    folder: str
    layout: str
    n_images: int
    n_patients: int
    labels: dict[str, int]
    patients_per_label: dict[str, int]
    masks: dict[str, int]
    problems: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def summarise_manifest(manifest: Manifest) -> DatasetSummary:
    """Images and patients per label, masks present per kind, and the problems found."""
    frame = manifest.frame
    labels = frame["label"].value_counts().sort_index()
    patients = frame.groupby("label")["patient_id"].nunique().sort_index()
    masks: dict[str, int] = {}
    for kind, column in MASK_COLUMNS.items():
        if column in frame.columns:
            masks[kind] = int(sum(1 for p in frame[column] if p is not None and Path(p).is_file()))
    problems = list(manifest.problems)
    mixed = frame.groupby("patient_id")["label"].nunique()
    if "slice_index" not in frame.columns and (mixed > 1).any():  # slice datasets label per slice
        problems.append(f"{int((mixed > 1).sum())} patient(s) carry more than one label")
    return DatasetSummary(
        folder=str(manifest.root),
        layout=manifest.layout.name,
        n_images=len(frame),
        n_patients=int(frame["patient_id"].nunique()),
        labels={str(k): int(v) for k, v in labels.items()},
        patients_per_label={str(k): int(v) for k, v in patients.items()},
        masks=masks,
        problems=problems,
    )


def summarise_folder(folder: str | Path) -> DatasetSummary:
    """Load ``folder`` and summarise it (raises :class:`ManifestError` for an unusable folder)."""
    return summarise_manifest(load_manifest(folder))


__all__ = ["DatasetSummary", "ManifestError", "summarise_folder", "summarise_manifest"]
