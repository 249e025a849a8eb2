"""Which series of a scanner export folder to read (image series only, localizers and reformats named and skipped),
and the series geometry the readers share: the head-pointing slice normal and positions along it.

A PACS export of one chest-CT study holds more than the axial stack: a scout (ImageType LOCALIZER, a coronal or
sagittal projection, often two), a dose report (an SR without pixels, or a Secondary Capture screenshot), other
reconstructions of the same acquisition (lung kernel 1 mm beside soft tissue 5 mm) and reformats (coronal 3 mm).
:func:`pick_series` reads the largest axial series of original CT images and says which one it read and what it
skipped, each by series number, description, image count and slice thickness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the us-liver predict path imports spread_indices without pydicom
    from pydicom.dataset import Dataset

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture image storage; its multi-frame variants are .7.x
_LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM", "PILOT")
MAX_AXIAL_TILT_COS = float(np.cos(np.radians(30)))  # as the CT gates' geometry check


def is_localizer(ds: Dataset) -> bool:
    """A scout / localizer image: ImageType says LOCALIZER (or a vendor word for it) or the series is named so."""
    image_type = " ".join(str(v) for v in (ds.get("ImageType") or [])).upper()
    description = str(ds.get("SeriesDescription") or "").upper()
    return any(word in image_type for word in _LOCALIZER_WORDS) or any(w in description for w in _LOCALIZER_WORDS)


def is_secondary_capture(sop_class_uid: str) -> bool:
    """A Secondary Capture storage class (single- or multi-frame), not e.g. the VL classes under ``...1.1.77``."""
    uid = str(sop_class_uid or "")
    return uid == SECONDARY_CAPTURE or uid.startswith(SECONDARY_CAPTURE + ".")


def plane(ds: Dataset) -> str | None:
    """``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"`` from ImageOrientationPatient (``None`` without it)."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    try:
        normal = np.abs(slice_normal(iop))
    except ValueError:  # degenerate orientation
        return None
    if normal[2] >= MAX_AXIAL_TILT_COS:
        return "axial"
    axis = int(np.argmax(normal))
    return ("sagittal", "coronal", "axial")[axis] if normal[axis] >= MAX_AXIAL_TILT_COS else "oblique"


def spread_indices(n: int, k: int, *, ends: bool = True) -> list[int]:
    """Up to ``k`` indices spread evenly over ``n`` slices or frames (all of them when ``n <= k``), ascending.

    ``ends=True``: the first and last included (a gate that must see where a scan starts and stops). ``ends=False``:
    the inner points of a ``k + 2`` spread, off both ends (a vote on what a scan shows: a chest CT's first and last
    slices are often neck or upper abdomen)."""
    if n <= k:
        return list(range(max(n, 0)))
    points = np.linspace(0, n - 1, k) if ends else np.linspace(0, n - 1, k + 2)[1:-1]
    return [int(i) for i in np.unique(points.astype(int))]


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of the slice plane from ImageOrientationPatient, pointing towards the head (+z)."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    if norm == 0:
        raise ValueError("degenerate ImageOrientationPatient")
    normal /= norm
    return -normal if normal[2] < 0 else normal


def normal_positions(datasets: Sequence[Dataset]) -> list[float] | None:
    """Each slice's ImagePositionPatient along the head-pointing slice normal of the first slice, in mm;
    ``None`` when any slice lacks ImagePositionPatient or ImageOrientationPatient."""
    if not all("ImagePositionPatient" in d and "ImageOrientationPatient" in d for d in datasets):
        return None
    normal = slice_normal(datasets[0].ImageOrientationPatient)
    return [float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)) for d in datasets]


def series_label(ds: Dataset, n_images: int) -> str:
    """``series 3 'Thorax 1.0 B70f' (300 images, 1 mm, kernel B70f)`` from one image's header."""
    number = ds.get("SeriesNumber")
    description = str(ds.get("SeriesDescription") or "").strip()
    head = "series" + (f" {number}" if number not in (None, "") else "") + (f" '{description}'" if description else "")
    if head == "series":
        head = f"series {str(ds.get('SeriesInstanceUID') or '(no SeriesInstanceUID)')[-12:]}"
    details = [f"{n_images} image{'s' if n_images != 1 else ''}"]
    thickness = ds.get("SliceThickness")
    if thickness not in (None, ""):
        details.append(f"{float(thickness):g} mm")
    kernel = ds.get("ConvolutionKernel")
    if kernel not in (None, ""):
        details.append(f"kernel {kernel if isinstance(kernel, str) else '/'.join(map(str, kernel))}")
    return f"{head} ({', '.join(details)})"


@dataclass(frozen=True)
class SeriesPick:
    """The images read (indices into the headers given, file order) and, in words, what was read and skipped."""

    indices: tuple[int, ...]
    notes: tuple[str, ...]


def _why_not(headers: Sequence[Dataset], indices: list[int]) -> str | None:
    """Why a whole series is not a candidate stack (``None`` when it is one)."""
    first = headers[indices[0]]
    if is_secondary_capture(first.get("SOPClassUID", "")) or str(first.get("Modality", "")) == "SC":
        return "secondary capture (a screenshot, e.g. a dose sheet)"
    where = plane(first)
    if where not in (None, "axial"):
        return f"{where} images (a reformat), not an axial stack"
    return None


def median_step(headers: Sequence[Dataset], indices: Sequence[int]) -> float | None:
    """Median distance (mm) between neighbouring slices of a series along its slice normal; ``None`` without
    positions and orientation (or with a degenerate one) or with fewer than 3 slices."""
    chosen = [headers[i] for i in indices]
    if len(chosen) < 3:
        return None
    try:
        positions = normal_positions(chosen)
    except ValueError:  # degenerate orientation
        return None
    return None if positions is None else float(np.median(np.diff(np.sort(positions))))


def pick_series(headers: Sequence[Dataset], prefer_step_mm: tuple[float, float] | None = None) -> SeriesPick:
    """The series to read from image headers of one folder: localizer images dropped (also from inside a series),
    then the axial, non-secondary-capture series with the most images; when none is axial, the largest series (the
    gates judge its orientation). ``prefer_step_mm`` (lo, hi): among axial series, one whose slice step lies in that
    range (what a task was validated on) goes before a larger one outside it (a 1 mm beside a 5 mm reconstruction).
    Notes name the series read, why, and every series or image skipped."""
    by_series: dict[str, list[int]] = {}
    for index, ds in enumerate(headers):
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(index)
    notes: list[str] = []
    stacks: dict[str, list[int]] = {}
    for uid, indices in by_series.items():
        scouts = [i for i in indices if is_localizer(headers[i])]
        rest = [i for i in indices if i not in set(scouts)]
        if scouts and rest:
            notes.append(f"skipped {len(scouts)} localizer image(s) inside {series_label(headers[rest[0]], len(rest))}")
        if rest:
            stacks[uid] = rest
        else:
            notes.append(f"skipped {series_label(headers[indices[0]], len(indices))}: localizer (scout)")
    if not stacks:  # only scouts: read them and let the gates refuse or flag them
        stacks = {uid: list(v) for uid, v in by_series.items()}
    reasons = {uid: _why_not(headers, v) for uid, v in stacks.items()}
    pool = [uid for uid in stacks if reasons[uid] is None] or list(stacks)
    steps = {uid: median_step(headers, stacks[uid]) for uid in pool}
    in_range = [uid for uid in pool if prefer_step_mm is not None and steps[uid] is not None
                and prefer_step_mm[0] <= steps[uid] <= prefer_step_mm[1]]
    chosen = max(in_range or pool, key=lambda uid: len(stacks[uid]))
    others = [uid for uid in stacks if uid != chosen]
    if others:
        why = "the axial series with the most images" if reasons[chosen] is None else "the series with the most images"
        if in_range and len(in_range) < len(pool):
            why += (f" among those with slices {prefer_step_mm[0]:g}–{prefer_step_mm[1]:g} mm apart (the range this "
                    f"task was validated on; slices {steps[chosen]:.2g} mm apart)")
        notes.insert(0, f"read {series_label(headers[stacks[chosen][0]], len(stacks[chosen]))}: {why} of "
                        f"{len(stacks)} series in the folder (give one series per folder to choose)")
        for uid in others:
            reason = reasons[uid] or ("slices outside that range" if uid in pool and in_range and uid not in in_range
                                      else "fewer images (another reconstruction or series of the study)")
            notes.append(f"skipped {series_label(headers[stacks[uid][0]], len(stacks[uid]))}: {reason}")
    return SeriesPick(tuple(stacks[chosen]), tuple(notes))
