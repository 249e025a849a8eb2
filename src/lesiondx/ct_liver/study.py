"""Studies as volumes: one (patient, phase) of a labelled folder, or an unlabelled series/slice folder.

Grey levels are the abdomen window (0..255). When the input is already windowed (PNG/JPG slices),
approximate HU are recovered by inverting the window the slices were exported with (``window``: given, or
``"auto"``, the default: estimated from the body's fat and muscle peaks; the abdomen window W 400, L 40 when
that cannot be told: exact inside −160…240 HU, which covers liver parenchyma and most lesions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from lesiondx.data import Manifest, as_manifest
from lesiondx.io import (AUTO, ImageReadError, MedicalImage, Window, WindowEstimate, apply_window, estimate_window,
                         get_window, grey_to_hu, parse_window_option, read_image, read_raster_array, read_study, to_display)
from lesiondx.progress import track

WINDOW = "abdomen"
# How 8-bit slices are read when nobody says which window they were exported with: estimated, the abdomen window
# when that fails. On IRCADb exports at W 300–500 it never found fewer lesions than assuming W 400 (which loses
# lesions on narrower exports), even on liver-level runs where the width estimate erred by up to 27 %
# (BENCHMARKS.md ct-liver 2c).
DEFAULT_EXPORT_WINDOW = AUTO
BODY_WIDTH_MM = 320.0  # typical adult abdominal lateral (left–right) diameter, used when spacing is unknown


@dataclass(frozen=True)
class Study:
    """Axial slices in slice order (index 0 = first / most superior).

    ``grey``: ``(S, H, W)`` abdomen-window grey 0..255; ``hu``: HU (or window-inverted HU when
    ``hu_exact`` is False); ``spacing_mm``: in-plane pixel size (estimated from the body width for
    slice images without one, see ``spacing_estimated``) or ``None``; ``liver``/``lesion``:
    reference masks when the folder has them (lesion = label map, k = lesion k, 0 = none).
    """

    study_id: str
    patient_id: str
    grey: np.ndarray
    hu: np.ndarray
    hu_exact: bool
    spacing_mm: float | None
    phase: str | None = None
    liver: np.ndarray | None = None
    lesion: np.ndarray | None = None
    sources: tuple[str, ...] = ()
    spacing_estimated: bool = False  # True when ``spacing_mm`` came from :func:`estimate_spacing_mm`
    export_window: Window | None = None  # 8-bit slices: the window their HU were recovered with
    export_window_source: str = ""  # "given", "estimated", or "default: <why the estimate failed>"
    window_estimate: WindowEstimate | None = None  # 8-bit slices: what the image itself suggests (a hint)
    orientation: tuple[float, ...] | None = None  # DICOM ImageOrientationPatient (locations in patient terms)
    slice_mm: float | None = None  # spacing between slices (mm) when the input says (DICOM volumes), else None

    @property
    def n_slices(self) -> int:
        return int(self.grey.shape[0])


def estimate_spacing_mm(hu: np.ndarray) -> float | None:
    """In-plane pixel size guessed for slices without one (PNG/JPG): ``BODY_WIDTH_MM`` divided by the
    median left–right extent (px) of the body (HU > −130: above fat, below window-clipped air) over the slices. Adult
    abdomens vary about ±20 % around that width, so physical sizes carry that error; ``None`` when no
    body is visible."""
    widths = []
    for sl in np.asarray(hu)[:: max(1, len(hu) // 12)]:
        body = ndimage.binary_fill_holes(ndimage.binary_opening(sl > -130, iterations=2))
        labels, n = ndimage.label(body)
        if n == 0:
            continue
        largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        cols = np.nonzero(largest.any(axis=0))[0]
        widths.append(cols.max() - cols.min() + 1)
    return float(BODY_WIDTH_MM / np.median(widths)) if widths and np.median(widths) >= 32 else None


def from_image(image: MedicalImage, study_id: str, patient_id: str | None = None, *,
               window: str | Window | tuple[float, float] = DEFAULT_EXPORT_WINDOW, **extra) -> Study:
    """A :class:`Study` from a volume (or one 2D image) read by :mod:`lesiondx.io`; 8-bit slices are taken
    as exported with ``window`` (HU input ignores it)."""
    pixels = image.pixels if image.is_volume else image.pixels[None]
    if pixels.ndim != 3:
        raise ValueError(f"{study_id}: expected grey slices, got pixel array of shape {image.pixels.shape}")
    export, source, estimate = None, "", None
    if image.is_hu:
        grey = apply_window(pixels, WINDOW)
        hu = pixels.astype(np.float32)
    else:
        shown = np.stack([to_display(image.with_pixels(p)) for p in pixels]).astype(np.float32)
        export, source, estimate = resolve_export_window(shown, window)
        hu = grey_to_hu(shown, export)
        grey = apply_window(hu, WINDOW)  # the abdomen-window grey every later step expects
    spacing = float(image.spacing[-1]) if image.spacing else None
    if image.is_volume and image.spacing and len(image.spacing) == 3 and "slice_mm" not in extra:
        extra["slice_mm"] = float(image.spacing[0])
    guessed = spacing is None
    if guessed:
        spacing = estimate_spacing_mm(hu)
    return Study(study_id, patient_id or study_id, grey, hu, bool(image.is_hu), spacing, phase=extra.pop("phase", image.phase),
                 sources=tuple(str(s) for s in image.sources), spacing_estimated=guessed and spacing is not None,
                 export_window=export, export_window_source=source, window_estimate=estimate,
                 orientation=extra.pop("orientation", image.orientation), **extra)


def resolve_export_window(shown: np.ndarray, window: str | Window | tuple[float, float]
                          ) -> tuple[Window, str, WindowEstimate]:
    """The window 8-bit slices ``shown`` (grey 0..255) are read as, where it came from, and the estimate from
    the image: ``window`` itself ("given"), or for ``"auto"`` the estimate ("estimated") or, when none can be
    made, the abdomen window ("default: <reason>")."""
    window, estimate = parse_window_option(window), estimate_window(shown)
    if window != AUTO:
        return window, "given", estimate
    if estimate.window is None:
        return get_window(WINDOW), f"default: {estimate.reason}", estimate
    return estimate.window, "estimated", estimate


def as_windowed(study: Study, exported_with: str | Window | tuple[float, float] = WINDOW,
                read_as: str | Window | tuple[float, float] = DEFAULT_EXPORT_WINDOW) -> Study:
    """The study as a user would send it in PNG/JPG slices exported with ``exported_with`` (8-bit grey only)
    and read back as :func:`from_image` does with ``read_as``: HU recovered by inverting that window (or the
    estimated one), no pixel spacing (estimated from the body width)."""
    shown = np.round(apply_window(study.hu, exported_with)).astype(np.float32)
    export, source, estimate = resolve_export_window(shown, read_as)
    hu = grey_to_hu(shown, export)
    spacing = estimate_spacing_mm(hu)
    return replace(study, grey=apply_window(hu, WINDOW), hu=hu, hu_exact=False, spacing_mm=spacing, slice_mm=None,
                   spacing_estimated=spacing is not None, export_window=export, export_window_source=source,
                   window_estimate=estimate)


def read_input_study(path: str | Path, window: str | Window | tuple[float, float] = DEFAULT_EXPORT_WINDOW) -> Study:
    """A DICOM series folder, a folder of slice images (natural file-name order) or one image file;
    ``window``: the display window 8-bit slices were exported with, or ``"auto"``."""
    path = Path(path)
    image = read_study(path) if path.is_dir() else read_image(path)
    return from_image(image, path.name, window=window)


def slice_step_mm(paths: list[str]) -> float | None:
    """Median distance (mm) between consecutive DICOM slices' ImagePositionPatient, ``None`` when the files
    are not DICOM or carry no positions."""
    import pydicom

    try:
        pos = [np.asarray(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient, float) for p in paths]
    except Exception:  # noqa: BLE001 — raster slices, headers without positions: the spacing is unknown
        return None
    steps = [float(np.linalg.norm(b - a)) for a, b in zip(pos, pos[1:])]
    step = float(np.median(steps)) if steps else 0.0
    return step if step > 0 else None


def _mask(path: str | None, shape: tuple[int, int], label_map: bool) -> np.ndarray:
    if path is None:
        return np.zeros(shape, dtype=np.int32)
    arr = read_raster_array(path, grey=True)
    if arr.shape != shape:
        raise ImageReadError(Path(path), f"mask is {arr.shape}, its image is {shape}")
    return arr.astype(np.int32) if label_map else (arr > 127).astype(np.int32)


def study_keys(frame: pd.DataFrame) -> list[str]:
    """The columns one study of a labelled folder is grouped by: patient, and phase when given."""
    return ["patient_id"] + (["phase"] if "phase" in frame.columns else [])


def study_volume(rows: pd.DataFrame) -> tuple[MedicalImage, float | None]:
    """One study's slice files (rows sorted by ``slice_index``) as a volume, with the slice step in mm
    (``None`` when the files do not tell)."""
    images = [read_image(p) for p in track(list(rows["image"]), f"reading {rows['patient_id'].iloc[0]}")]
    volume = images[0].with_pixels(np.stack([im.pixels for im in images]).astype(np.float32))
    step = slice_step_mm(list(rows["image"]))
    volume = MedicalImage(volume.pixels, (step or 1.0, *images[0].spacing) if images[0].spacing else None,
                          images[0].modality, is_hu=images[0].is_hu, sources=tuple(im.source for im in images))
    return volume, step


def labelled_studies(folder: str | Path | Manifest, patients: list[str] | None = None) -> list[Study]:
    """One :class:`Study` per (patient, phase) of a dataset folder (or its manifest, e.g. the rows left after
    excluding unreadable ones) with ``slice_index`` (IRCADb layout), slices sorted by ``slice_index``;
    liver/lesion masks read when listed."""
    manifest = as_manifest(folder)
    frame = manifest.frame
    if "slice_index" not in frame.columns:
        raise ValueError(f"{manifest.root}: labels.csv has no slice_index column (not a slice-wise CT folder)")
    if patients is not None:
        frame = frame[frame["patient_id"].isin(patients)]
    keys = study_keys(frame)
    out = []
    for key, rows in frame.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows = rows.sort_values("slice_index")
        volume, step = study_volume(rows)
        shape = volume.pixels.shape[1:]
        liver = lesion = None
        if "liver_mask" in rows.columns:
            liver = np.stack([_mask(p, shape, False) for p in rows["liver_mask"]]).astype(bool)
        if "lesion_mask" in rows.columns:
            lesion = np.stack([_mask(p, shape, manifest.layout.lesion_mask_is_label_map) for p in rows["lesion_mask"]])
        phase = str(key[1]) if len(key) > 1 and pd.notna(key[1]) else None
        sid = f"{key[0]}_{phase}" if phase else str(key[0])
        out.append(from_image(volume, sid, str(key[0]), phase=phase, liver=liver, lesion=lesion, slice_mm=step))
    return out


def usable_slice_row(row: pd.Series) -> None:
    """Read one row of a labelled slice folder as :func:`labelled_studies` reads it (the slice, and its masks
    at the slice's shape); raises ``ImageReadError`` naming the file that cannot be used."""
    shape = read_image(row["image"]).pixels.shape
    for column in ("liver_mask", "lesion_mask"):
        if row.get(column) is not None:
            _mask(row[column], shape, True)
