"""``lesiondx data summary``: counts a researcher checks before using a dataset folder, and its problems.

Problems (the folder is not usable as it is; the CLI exits with code 2): no or unparseable
labels.csv, a required column missing, no rows, paths outside the folder, missing or unreadable image
and mask files (each one is opened), patients with several labels. Warnings (worth a look): labels the
task does not know, no patient_id column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from .layouts import LAYOUTS
from .manifest import MASK_COLUMNS, Manifest, ManifestError, load_manifest, outside_folder

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


def probe_file(path: str | Path) -> str | None:
    """Open one image or mask file without decoding all of it: ``None`` when readable, else the reason.

    PNG/JPG/...: PIL header plus its integrity check; NIfTI: SimpleITK header; anything else: a DICOM
    dataset with pixel data.
    """
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


def unreadable_files(manifest: Manifest) -> list[str]:
    """One problem per image/mask column with files that exist but cannot be opened."""
    problems = []
    for column in ("image", *MASK_COLUMNS.values()):
        if column not in manifest.frame.columns:
            continue
        bad = []
        for row, path in enumerate(manifest.frame[column]):
            if path is None or outside_folder(manifest.root, path) or not Path(path).is_file():
                continue  # missing and outside files are reported by the manifest
            reason = probe_file(path)
            if reason is not None:
                bad.append((row, path, reason))
        if bad:
            row, path, reason = bad[0]
            problems.append(f"{len(bad)} {column} file(s) unreadable (first: row {row + 2}, "
                            f"{Path(path).relative_to(manifest.root)}: {reason})")
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
        problems.append(f"{int((mixed > 1).sum())} patient(s) carry more than one label")
    warnings = list(manifest.warnings)
    if task is not None:
        unknown = sorted(set(labels.index.astype(str)) - known_labels(task))
        if unknown:
            count = int(frame["label"].astype(str).isin(unknown).sum())
            names = ", ".join(map(repr, unknown[:10]))
            warnings.append(f"{count} row(s) with label(s) task {task} does not know: {names} "
                            f"(known: {', '.join(sorted(known_labels(task)))})")
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
        manifest = load_manifest(folder, outside_ok=True)
    except ManifestError as exc:
        return DatasetSummary(folder=str(Path(folder).resolve()), layout="unknown", n_images=0, n_patients=0,
                              labels={}, patients_per_label={}, masks={}, problems=[str(exc)], task=task)
    return summarise_manifest(manifest, task)


__all__ = ["DatasetSummary", "ManifestError", "known_labels", "probe_file", "summarise_folder", "summarise_manifest"]
