"""``lesiondx data summary``: counts a researcher checks before using a dataset folder, and its problems.

Problems (the folder is not usable as it is; the CLI exits with code 2): no or unparseable
labels.csv, a required column missing, no rows, paths outside the folder, missing or unreadable image
and mask files (each one is opened), patients with several labels, labels us-liver or ct-liver does not know
(their train and evaluate refuse them). Warnings (worth a look): labels ct-covid does not know (it counts them
as negative), no patient_id column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .badrows import FILE_COLUMNS, REFUSES_UNKNOWN_LABELS, probe_file, repeated_image, unknown_labels, unreadable_rows
from .layouts import LAYOUTS
from .manifest import MASK_COLUMNS, Manifest, ManifestError, load_manifest

# Labels each task reads beyond the positive/negative ones of its dataset layouts (AUL "normal" frames
# are scored apart; ct-liver folders may name lesion types of its label tree instead).
_EXTRA_LABELS = {"us-liver": ("normal",)}


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
    task: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def known_labels(task: str) -> frozenset[str]:
    """The label values task ``task`` understands (from the dataset layouts and, for ct-liver, its label tree)."""
    labels = {v for layout in LAYOUTS if layout.task == task for v in (*layout.positive, *layout.negative)}
    labels |= set(_EXTRA_LABELS.get(task, ()))
    if task == "ct-liver":
        from lesiondx.ct_liver.config import DEFAULT_TREE

        labels |= set(DEFAULT_TREE) | {leaf for leaves in DEFAULT_TREE.values() for leaf in leaves}
    if not labels:
        raise ValueError(f"unknown task {task!r}; choose us-liver, ct-liver or ct-covid")
    return frozenset(labels)


def unreadable_files(manifest: Manifest) -> list[str]:
    """One problem per image/mask column with files that exist but cannot be opened."""
    problems = []
    for column in FILE_COLUMNS:
        bad = unreadable_rows(manifest, (column,))
        if bad:
            problems.append(f"{len(bad)} {column} file(s) unreadable (first: row {bad[0].row}, {bad[0].line()})")
    return problems


def summarise_manifest(manifest: Manifest, task: str | None = None, *, open_files: bool = True) -> DatasetSummary:
    """Images and patients per label, masks present per kind, problems and warnings.

    ``task`` (default: the task of the folder's layout) decides which labels are known.
    """
    frame = manifest.frame
    task = task or manifest.layout.task
    labels = frame["label"].value_counts().sort_index()
    patients = frame.groupby("label")["patient_id"].nunique().sort_index()
    masks: dict[str, int] = {}
    for kind, column in MASK_COLUMNS.items():
        if column in frame.columns:
            masks[kind] = int(sum(1 for p in frame[column] if p is not None and Path(p).is_file()))
    problems = list(manifest.problems)
    if open_files:
        problems += unreadable_files(manifest)
    mixed = frame.groupby("patient_id")["label"].nunique()
    if "slice_index" not in frame.columns and (mixed > 1).any():  # slice datasets label per slice
        first = str(mixed.index[mixed > 1][0])
        problems.append(f"{int((mixed > 1).sum())} patient(s) carry more than one label (first: patient_id {first!r}, "
                        f"rows {', '.join(str(manifest.line(i)) for i in frame.index[frame['patient_id'] == first][:5])})")
    repeated = repeated_image(manifest) if "slice_index" not in frame.columns else None
    if repeated:
        problems.append(f"{manifest.root / 'labels.csv'}, row {repeated[0]}, column 'image': {repeated[1]}")
    warnings = list(manifest.warnings)
    if task is not None:
        unknown, known = unknown_labels(manifest, task)
        if unknown:
            rows = frame["label"].astype(str).isin(unknown)
            text = (f"{int(rows.sum())} row(s) with label(s) task {task} does not know: "
                    f"{', '.join(map(repr, unknown[:10]))} (known: {', '.join(sorted(known))})")
            if task in REFUSES_UNKNOWN_LABELS:
                problems.append(f"{manifest.root / 'labels.csv'}, row {manifest.line(int(frame.index[rows][0]))}, "
                                f"column 'label': {text}; train and evaluate --task {task} refuse them: write those "
                                "rows' labels as known ones")
            else:
                warnings.append(f"{text}; train and evaluate --task {task} count them as negative")
    return DatasetSummary(
        folder=str(manifest.root),
        layout=manifest.layout.name,
        n_images=len(frame),
        n_patients=int(frame["patient_id"].nunique()),
        labels={str(k): int(v) for k, v in labels.items()},
        patients_per_label={str(k): int(v) for k, v in patients.items()},
        masks=masks,
        problems=problems,
        task=task,
        warnings=warnings,
    )


def summarise_folder(folder: str | Path, task: str | None = None) -> DatasetSummary:
    """Load and summarise ``folder``; an unusable folder (no labels.csv, missing column, no rows...)
    gives an empty summary whose ``problems`` say why, rather than an exception."""
    if task is not None:
        known_labels(task)  # an unknown task name is a usage error, not a dataset problem
    try:
        manifest = load_manifest(folder, outside_ok=True, duplicates_ok=True)
    except ManifestError as exc:
        return DatasetSummary(folder=str(Path(folder).resolve()), layout="unknown", n_images=0, n_patients=0,
                              labels={}, patients_per_label={}, masks={}, problems=[str(exc)], task=task)
    return summarise_manifest(manifest, task)


__all__ = ["DatasetSummary", "ManifestError", "known_labels", "probe_file", "summarise_folder", "summarise_manifest"]
