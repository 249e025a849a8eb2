"""DICOM files and series: decoding (incl. JPEG-lossless / JPEG 2000), HU, slice order."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut

from .decodes import decoded
from .enhanced import frame_geometry, frame_rescale, is_enhanced
from .errors import ImageReadError, NotAnImage, require_nonempty_file
from .image import MedicalImage
from .raster import check_pixel_count, check_series_pixel_count, chroma_of, coloured_share
from .series import normal_positions, pick_series, slice_normal

# Real scanner files carry values that break the VR rules (UUID-style UIDs, long strings...):
# read them as they are instead of warning on every access.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

_PHASE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("portal-venous", r"portal|venous|\bpv\b|pvp|\bvp\b"),
    ("arterial", r"arter|\bap\b|\bart\b"),
    ("delayed", r"delay|equilib|late"),
    ("non-contrast", r"non[- ]?contrast|plain|native|pre[- ]?contrast|unenhanced|\bnc\b"),
)


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` starts with a DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_dataset(path: str | Path, *, pixels: bool = True) -> Dataset:
    """Read one DICOM dataset; any failure becomes :class:`ImageReadError` naming the file."""
    path = require_nonempty_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=not is_dicom_file(path))
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a DICOM file ({exc})") from exc
    except Exception as exc:  # truncated headers raise EOFError, struct.error, ValueError...
        raise ImageReadError(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    truncated = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    if truncated:
        raise ImageReadError(path, f"truncated DICOM file ({truncated[0]})")
    if len(ds) == 0 and is_dicom_file(path):
        raise ImageReadError(path, "corrupt DICOM file (no data elements could be read)")
    if "DirectoryRecordSequence" in ds or "FileSetID" in ds:
        raise NotAnImage(path, "a DICOMDIR (the index of a DICOM export), not an image")
    if "SOPClassUID" not in ds and "Modality" not in ds and "PixelData" not in ds:
        raise ImageReadError(path, "not a DICOM file (no DICOM image attributes found)")
    if pixels and "PixelData" not in ds:
        if is_non_image_object(ds):
            raise NotAnImage(path, f"a DICOM {ds.get('Modality') or 'non-image'} object with no pixel data: a report "
                                   "or other non-image object")
        raise ImageReadError(path, "DICOM file holds no pixel data (not an image, or a cut-off image file)")
    return ds


_NON_IMAGE_MODALITIES = frozenset({"SR", "KO", "PR", "DOC", "RTSTRUCT", "RTPLAN", "RTRECORD", "REG", "FID", "PLAN"})
_NON_IMAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.", "1.2.840.10008.5.1.4.1.1.11.", "1.2.840.10008.5.1.4.1.1.104.",
                      "1.2.840.10008.5.1.4.1.1.481.")  # structured reports, presentation states, documents, RT


def is_non_image_object(ds: Dataset) -> bool:
    """A DICOM object that never holds an image (dose / structured report, key object, presentation state, PDF,
    RT plan): by Modality or SOP class. An image object without pixels is damaged, not one of these."""
    sop = str(ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    return str(ds.get("Modality") or "").upper() in _NON_IMAGE_MODALITIES or sop.startswith(_NON_IMAGE_CLASSES)


def guess_phase(ds: Dataset) -> str | None:
    """Contrast phase from SeriesDescription / ContrastBolusAgent / ProtocolName, if stated."""
    text = " ".join(str(ds.get(tag, "")) for tag in ("SeriesDescription", "ProtocolName", "ContrastBolusAgent"))
    text = text.lower()
    for phase, pattern in _PHASE_PATTERNS:
        if re.search(pattern, text):
            return phase
    return None


def _pixel_count(ds: Dataset) -> int:
    return int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * int(ds.get("NumberOfFrames") or 1)


def _decoded_pixels(ds: Dataset, path: Path) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """Pixel array as float32 (HU when a modality LUT exists), colour (RGB, YBR_*, PALETTE COLOR)
    converted to grey by ITU-R BT.601 luma; with the chroma of colour data (``None`` for monochrome)."""
    check_pixel_count(path, _pixel_count(ds), "DICOM image")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            raw = ds.pixel_array  # pydicom converts YBR_FULL / YBR_FULL_422 to RGB
            if photometric == "PALETTE COLOR":
                raw = apply_color_lut(raw, ds)
    except Exception as exc:  # truncated pixel data, missing decoder, bad JPEG stream...
        raise ImageReadError(path, f"cannot decode pixel data ({type(exc).__name__}: {exc})") from exc
    if raw.ndim >= 3 and raw.shape[-1] == 3 and (int(ds.get("SamplesPerPixel", 1)) == 3 or photometric == "PALETTE COLOR"):
        rgb = raw.astype(np.float32)
        if photometric == "PALETTE COLOR" and rgb.max() > 255:  # 16-bit palette entries
            rgb = rgb / 257.0
        grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return grey.astype(np.float32), False, chroma_of(rgb)
    has_lut = "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds
    values = apply_modality_lut(raw, ds) if has_lut else raw
    rescale = frame_rescale(ds) if not has_lut and is_enhanced(ds) and raw.ndim == 3 else None
    if rescale is not None:  # an Enhanced CT: slope and intercept per frame in the functional groups
        values, has_lut = raw * rescale[:, 0, None, None] + rescale[:, 1, None, None], True
    modality = str(ds.get("Modality", "OT"))
    if photometric == "MONOCHROME1":
        values = values.max() - values
    return np.asarray(values, dtype=np.float32), has_lut and modality == "CT", None


def _spacing_2d(ds: Dataset) -> tuple[float, float] | None:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is not None and len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    return ultrasound_spacing(ds)


def ultrasound_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, col) mm per pixel from the SequenceOfUltrasoundRegions items whose physical units are cm in both
    directions (PhysicalUnitsX/YDirection = 3; PhysicalDeltaX/Y are in cm); ``None`` when there is none, or when such
    regions disagree (a split screen at two depths): which one a lesion lies in is not known here, and a size in mm
    from the wrong one would be wrong."""
    found: set[tuple[float, float]] = set()
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            if int(region.get("PhysicalUnitsXDirection", 0)) == 3 and int(region.get("PhysicalUnitsYDirection", 0)) == 3:
                dx, dy = abs(float(region.PhysicalDeltaX)) * 10.0, abs(float(region.PhysicalDeltaY)) * 10.0
                if dx > 0 and dy > 0:
                    found.add((round(dy, 9), round(dx, 9)))
        except (AttributeError, TypeError, ValueError):
            continue
    return found.pop() if len(found) == 1 else None


def _metadata(ds: Dataset) -> dict[str, str]:
    keep = ("StudyInstanceUID", "SeriesInstanceUID", "SeriesDescription", "BodyPartExamined", "Manufacturer",
            "PhotometricInterpretation")
    return {key: str(ds.get(key)) for key in keep if ds.get(key) not in (None, "")}


def read_dicom(path: str | Path, *, frame: int | None = None) -> MedicalImage:
    """One DICOM file: a 2D image, or a volume / cine for multi-frame files (``frame``: only that one,
    0-based)."""
    path = Path(path)
    return image_from_dataset(read_dataset(path), path, frame=frame)


def image_from_dataset(ds: Dataset, path: Path, *, frame: int | None = None) -> MedicalImage:
    """Decode an already-read dataset (``path`` names it in errors and ``sources``); ``frame`` picks one
    frame (0-based) of a multi-frame file."""
    pixels, is_hu, chroma = _decoded_pixels(ds, path)
    colour = coloured_share(chroma)
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if frame is not None:
        if not 0 <= frame < n_frames:
            raise ImageReadError(path, f"frame {frame} does not exist (the file has {n_frames} frame(s), 0-based)")
        pixels = pixels[frame] if n_frames > 1 else pixels
        chroma = chroma[frame] if chroma is not None and n_frames > 1 else chroma
    spacing = _spacing_2d(ds)
    iop = ds.get("ImageOrientationPatient")
    orientation = tuple(float(v) for v in iop) if iop else None
    positions = None
    if is_enhanced(ds):  # geometry in the functional groups; frames ordered superior → inferior like a series
        orientation, spacing, pixels, positions = _enhanced_geometry(ds, pixels, frame, orientation, spacing)
    if pixels.ndim == 3 and spacing is not None and len(spacing) == 2:
        thickness = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
        spacing = (thickness, *spacing)
    metadata = _metadata(ds) | ({"ColourFraction": f"{colour:.4f}"} if colour else {})
    return MedicalImage(
        pixels=pixels,
        spacing=spacing,
        modality=str(ds.get("Modality") or "OT"),
        orientation=orientation,
        phase=guess_phase(ds),
        sources=(path,),
        positions=positions,
        is_hu=is_hu,
        metadata=metadata,
        chroma=chroma if chroma is not None and chroma.shape == pixels.shape else None,  # enhanced frames reordered
    )


def _enhanced_geometry(ds: Dataset, pixels: np.ndarray, frame: int | None, orientation, spacing):
    """Orientation, spacing (2-D, or slice step + 2-D for the whole volume), pixels and head-pointing positions of an
    enhanced multi-frame file; the volume is reordered superior → inferior when every frame has a position."""
    iop, in_plane, frame_positions = frame_geometry(ds)
    orientation, spacing = iop or orientation, in_plane or spacing
    if frame is not None or pixels.ndim != 3 or frame_positions is None or orientation is None:
        return orientation, spacing, pixels, None
    normal = slice_normal(orientation)
    along = np.array([float(np.dot(p, normal)) for p in frame_positions])
    order = np.argsort(-along, kind="stable")
    positions = tuple(float(v) for v in along[order])
    if spacing is not None and len(positions) > 1:
        spacing = (float(np.median(np.abs(np.diff(positions)))), *spacing)
    return orientation, spacing, pixels[order], positions


def superior_to_inferior_keys(datasets: Sequence[Dataset]) -> list[float]:
    """Sort keys putting the most superior slice first (ascending key order).

    Uses ImagePositionPatient projected on the slice normal; falls back to SliceLocation, then
    InstanceNumber (assumed to run superior to inferior) when positions are missing.
    """
    positions = normal_positions(datasets)
    if positions is not None:
        keys = [-p for p in positions]
        if len(set(keys)) == len(keys):
            return keys
    if all(d.get("SliceLocation") is not None for d in datasets):
        keys = [-float(d.SliceLocation) for d in datasets]
        if len(set(keys)) == len(keys):
            return keys
    return [float(d.get("InstanceNumber") or 0) for d in datasets]


def dicom_files_in(folder: Path) -> list[Path]:
    """Files of ``folder`` that may be DICOM (by suffix, no suffix, or a DICM preamble), sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in (".dcm", ".dicom", ".ima", "") or is_dicom_file(p)]


MAX_NESTED_FILES = 20_000  # files looked at below an export folder (a whole CT study is ~100–3,000 images)


def nested_dicom_files(folder: Path) -> list[Path]:
    """DICOM files in the subfolders of an export folder whose own files are at most a DICOMDIR (the PACS / CD
    layout ``DICOMDIR`` + ``DICOM/ST000/SE000/IM0000``), sorted by path; empty when ``folder`` holds image files
    itself. Refused (``ImageReadError``) above :data:`MAX_NESTED_FILES` files."""
    if any(p.name.upper() != "DICOMDIR" for p in dicom_files_in(folder)):
        return []
    found: list[Path] = []
    for path in folder.rglob("*"):  # unsorted: the cap stops the walk of a huge tree early
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts) \
                and path.name.upper() != "DICOMDIR" and path.parent != folder:
            found.append(path)
            if len(found) > MAX_NESTED_FILES:
                raise ImageReadError(folder, f"more than {MAX_NESTED_FILES} files in its subfolders: give the "
                                             "folder of one series or study")
    return [p for p in sorted(found) if p.suffix.lower() in (".dcm", ".dicom", ".ima", "") or is_dicom_file(p)]


def _read_headers(paths: list[Path], root: Path | None = None) -> tuple[list[Path], list[Dataset], list[str]]:
    """Read every candidate file; files that are not DICOM at all (a LICENSE, a README, a thumbnail)
    are skipped and named (relative to ``root`` when given, else by file name); a DICOM file that is corrupt still
    fails the series."""
    kept, headers, skipped = [], [], []
    for p in paths:
        shown = str(p.relative_to(root)) if root is not None else p.name
        try:
            headers.append(read_dataset(p))
            kept.append(p)
        except NotAnImage as exc:  # a dose report, a DICOMDIR: part of an export, not of the series
            skipped.append(f"{shown} ({exc.reason})")
        except ImageReadError as exc:
            if is_dicom_file(p) or p.suffix.lower() in (".dcm", ".dicom", ".ima"):
                raise
            skipped.append(f"{shown} ({exc.reason})")
    return kept, headers, skipped


def _without_copies(headers: Sequence[Dataset], indices: list[int]) -> tuple[list[int], list[int]]:
    """``indices`` without files that repeat an earlier one: the same non-empty SOPInstanceUID, or the same
    ImagePositionPatient and the same pixel bytes (a file exported or copied twice); and the dropped ones. A slice
    counted twice would make k consecutive slices of the patient rule out of fewer."""
    seen: set[tuple] = set()
    kept, dropped = [], []
    for i in indices:
        ds = headers[i]
        uid = str(ds.get("SOPInstanceUID") or "")
        position = tuple(round(float(v), 3) for v in ds.get("ImagePositionPatient") or ())
        keys = {("uid", uid)} if uid else set()
        if "PixelData" in ds:  # headers read without pixels: the UID alone
            keys.add(("pixels", position, hash(ds.PixelData), len(ds.PixelData or b"")))
        if keys & seen:
            dropped.append(i)
        else:
            kept.append(i)
            seen |= keys
    return kept, dropped


def series_order(headers: Sequence[Dataset], prefer_step_mm: tuple[float, float] | None = None, *,
                 where: Path = Path(".")) -> tuple[list[int], tuple[str, ...], list[int]]:
    """What :func:`read_dicom_series` reads from the headers of one folder: the indices of its images, superior →
    inferior; the notes on the series read and skipped; the indices dropped as copies of another file. Headers read
    without pixels are told apart by SOPInstanceUID only. Refused (``ImageReadError`` naming ``where``): files of
    several patients, one series with slices in several orientations."""
    patients = {str(d.get("PatientID")) for d in headers if d.get("PatientID") not in (None, "")}
    if len(patients) > 1:
        raise ImageReadError(where, f"the files belong to {len(patients)} patients (PatientID): give one patient's series")
    pick = pick_series(headers, prefer_step_mm)
    orientations = {tuple(round(float(v), 3) for v in headers[i].ImageOrientationPatient)
                    for i in pick.indices if "ImageOrientationPatient" in headers[i]}
    if len(orientations) > 1:
        raise ImageReadError(where, f"slices of one series have {len(orientations)} different orientations: not one stack")
    chosen, copies = _without_copies(headers, list(pick.indices))
    keys = superior_to_inferior_keys([headers[i] for i in chosen])
    return [chosen[i] for i in np.argsort(keys, kind="stable")], pick.notes, copies


@dataclass(frozen=True)
class SeriesFiles:
    """The files :func:`read_dicom_series` reads from a folder, superior → inferior, with their headers and the notes
    on what was skipped or chosen (code that maps results back to instances, e.g. the PACS export, uses this)."""

    folder: Path
    paths: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    notes: tuple[str, ...]


def series_files(source: str | Path | Iterable[str | Path], *,
                 prefer_step_mm: tuple[float, float] | None = None) -> SeriesFiles:
    """The series :func:`read_dicom_series` reads (same choices, refusals and notes), headers only: pixels are not
    decoded."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise ImageReadError(folder, "not a folder")
        paths = dicom_files_in(folder)
        nested = nested_dicom_files(folder)
        paths = nested or paths
        if not paths:
            raise ImageReadError(folder, "folder holds no DICOM files")
    else:
        paths, nested = [Path(p) for p in source], []
        folder = paths[0].parent if paths else Path(".")
        if not paths:
            raise ImageReadError(folder, "no DICOM files given")
    paths, headers, skipped = _read_headers(paths, folder if nested else None)  # one read per file; pixels lazily
    notes = [f"skipped {len(skipped)} file(s) that are not DICOM images: {', '.join(skipped)}"] if skipped else []
    if not headers:
        raise ImageReadError(folder, "folder holds no DICOM images" + (f" ({notes[0]})" if notes else ""))
    order, picked, copies = series_order(headers, prefer_step_mm, where=folder)
    notes = [*picked, *notes]
    if copies:
        notes.append(f"dropped {len(copies)} duplicate file(s) ({', '.join(paths[i].name for i in copies[:5])}"
                     f"{', ...' if len(copies) > 5 else ''}): the same image as another file (exported twice)")
    if nested:
        notes.insert(0, f"read from the subfolders of {folder.name} ({len(nested)} files under it)")
    return SeriesFiles(folder, tuple(paths[i] for i in order), tuple(headers[i] for i in order), tuple(notes))


def read_dicom_series(source: str | Path | Iterable[str | Path], *,
                      prefer_step_mm: tuple[float, float] | None = None) -> MedicalImage:
    """A DICOM series (a folder or a list of files) as a volume ordered superior → inferior.

    Files that are not DICOM images (a README, a dose report, a DICOMDIR) are skipped and listed in ``warnings``.
    A folder holding only a DICOMDIR is read through its subfolders (a PACS / CD export). Of several series the one
    :func:`lesiondx.io.series.pick_series` picks is read (localizers, reformats and secondary captures skipped), and
    ``warnings`` name it and the others. Refused (``ImageReadError``): files of several patients, slices of different
    sizes or orientations. Repeated slice positions are warned about. ``prefer_step_mm``: see ``pick_series``.
    """
    series = series_files(source, prefer_step_mm=prefer_step_mm)
    folder, paths, headers, notes = series.folder, series.paths, series.headers, list(series.notes)
    order = range(len(paths))
    check_series_pixel_count(folder, [_pixel_count(headers[i]) for i in order])
    slices = [decoded("image", paths[i], None, lambda i=i: image_from_dataset(headers[i], paths[i]), keep=False)
              for i in order]  # a slice already decoded in a shared_decodes block is not decoded again
    if any(s.is_volume for s in slices):
        if len(slices) > 1:
            raise ImageReadError(folder, f"{len(slices)} files of one series and a multi-frame file among them: give "
                                         "the multi-frame file on its own")
        return replace(slices[0], warnings=tuple(notes) + slices[0].warnings)  # one Enhanced CT file: the volume
    shapes = {s.pixels.shape for s in slices}
    if len(shapes) != 1:
        raise ImageReadError(folder, f"slices have different sizes {sorted(shapes)}: not one series")
    first = slices[0]
    ordered_positions = normal_positions([headers[i] for i in order])
    positions = tuple(ordered_positions) if ordered_positions is not None else None
    if positions is not None and len(set(np.round(positions, 2))) < len(positions):
        notes.append(f"{len(positions) - len(set(np.round(positions, 2)))} slice position(s) repeat: "
                     "two stacks may be mixed in one series")
    spacing = None
    if first.spacing is not None:
        if positions is not None and len(positions) > 1:
            step = float(np.median(np.abs(np.diff(positions))))
        else:
            step = float(headers[order[0]].get("SliceThickness") or 1.0)
        spacing = (step, *first.spacing)
    return MedicalImage(
        pixels=np.stack([s.pixels for s in slices]).astype(np.float32, copy=False),  # a new array already
        spacing=spacing,
        modality=first.modality,
        orientation=first.orientation,
        phase=first.phase,
        sources=tuple(paths[i] for i in order),
        positions=positions,
        is_hu=first.is_hu,
        metadata=dict(first.metadata),
        warnings=tuple(notes),
    )
