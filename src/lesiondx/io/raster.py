"""Plain raster images (PNG/JPG/BMP/TIFF, 8 and 16 bit), slice folders and NIfTI volumes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError, require_nonempty_file
from .image import MedicalImage

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (digit runs compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_raster_array(path: str | Path, *, grey: bool = True) -> np.ndarray:
    """Pixels of a PNG/JPG/... as an array: ``(rows, cols)`` grey, or ``(rows, cols, 3)`` RGB.

    8-bit images stay in 0..255 and 16-bit in 0..65535 (returned as float32 in both cases).
    """
    path = require_nonempty_file(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float32)
            elif grey:
                array = np.asarray(img.convert("L"), dtype=np.float32)
            else:
                array = np.asarray(img.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if grey and array.ndim == 3:
        array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return array


def read_raster(path: str | Path, *, modality: str = "OT") -> MedicalImage:
    """A PNG/JPG/... file as a grey 2D :class:`MedicalImage` (no spacing: JPEGs carry none)."""
    path = Path(path)
    return MedicalImage(pixels=read_raster_array(path), modality=modality, sources=(path,))


def read_slice_folder(folder: str | Path, *, modality: str = "CT") -> MedicalImage:
    """A folder of plain slice images as a volume, in natural file-name order (``2.jpg`` < ``10.jpg``).

    The images are taken as already windowed (``is_hu`` is False).
    """
    folder = Path(folder)
    paths = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    if not paths:
        raise ImageReadError(folder, "folder holds no PNG/JPG slice images")
    slices = [read_raster_array(p) for p in paths]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise ImageReadError(folder, f"slice images have different sizes {sorted(shapes)}")
    return MedicalImage(pixels=np.stack(slices), modality=modality, sources=tuple(paths))


def read_nifti(path: str | Path) -> MedicalImage:
    """A NIfTI volume (via SimpleITK) as ``(slices, rows, cols)``, spacing in mm, superior first."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    try:
        image = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")
    except RuntimeError as exc:
        raise ImageReadError(path, f"not a readable NIfTI file ({str(exc).strip().splitlines()[-1]})") from exc
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x), z increasing = superior in LPS
    sx, sy, sz = image.GetSpacing()
    if array.ndim == 3:
        array = array[::-1].copy()  # superior first
        spacing: tuple[float, ...] = (float(sz), float(sy), float(sx))
    else:
        spacing = (float(sy), float(sx))
    return MedicalImage(pixels=array, spacing=spacing, modality="OT", sources=(path,), is_hu=False)
