"""Plain raster images (PNG/JPG/BMP/TIFF, 8 and 16 bit), slice folders and NIfTI volumes."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .continuity import require_one_series
from .errors import ImageReadError, require_nonempty_file
from .image import MedicalImage

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (digit runs compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


DEFAULT_MAX_PIXELS = 50_000_000  # per image; LESIONDX_MAX_PIXELS overrides


def max_pixels() -> int:
    """The largest pixel count (rows × cols × frames) a reader decodes: ``LESIONDX_MAX_PIXELS`` or 50 Mpx."""
    value = os.environ.get("LESIONDX_MAX_PIXELS", "")
    try:
        return int(float(value)) if value.strip() else DEFAULT_MAX_PIXELS
    except ValueError:
        return DEFAULT_MAX_PIXELS


DEFAULT_MAX_SERIES_PIXELS = 170_000_000  # a whole DICOM series; LESIONDX_MAX_SERIES_PIXELS overrides


def max_series_pixels() -> int:
    """The most pixels a DICOM series may hold in all (``LESIONDX_MAX_SERIES_PIXELS`` or 170 Mpx: about 650 slices of
    512², a 0.625 mm chest CT; ct-covid predict on 532 such slices peaked at 2.4 GB, benchmarks/ct_covid.md).
    Each image of it is held to :func:`max_pixels` as well."""
    value = os.environ.get("LESIONDX_MAX_SERIES_PIXELS", "")
    try:
        return int(float(value)) if value.strip() else DEFAULT_MAX_SERIES_PIXELS
    except ValueError:
        return DEFAULT_MAX_SERIES_PIXELS


def check_series_pixel_count(path: str | Path, counts: list[int]) -> None:
    """Refuse (``ImageReadError``) a series with an image above :func:`max_pixels` or, in all, above
    :func:`max_series_pixels` pixels, before anything is decoded."""
    if counts:
        check_pixel_count(path, max(counts), "an image of the DICOM series")
    total, limit = sum(counts), max_series_pixels()
    if total > limit:
        raise ImageReadError(path, f"DICOM series has {total / 1e6:.1f} million pixels in all, more than the limit of "
                                   f"{limit / 1e6:.0f} million (LESIONDX_MAX_SERIES_PIXELS)")


def check_pixel_count(path: str | Path, count: int, what: str = "image") -> None:
    """Refuse (``ImageReadError``) an image of more than :func:`max_pixels` pixels before it is decoded."""
    limit = max_pixels()
    if count > limit:
        raise ImageReadError(path, f"{what} has {count / 1e6:.1f} million pixels, more than the limit of "
                                   f"{limit / 1e6:.0f} million (LESIONDX_MAX_PIXELS)")


def _open_checked(path: Path) -> Image.Image:
    """``Image.open`` with the pixel count checked from the header before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own header check (above ~179 Mpx)
        raise ImageReadError(path, f"image has more pixels than the limit of {max_pixels() / 1e6:.0f} million "
                                   f"(LESIONDX_MAX_PIXELS; {exc})") from exc
    width, height = img.size
    check_pixel_count(path, int(width) * int(height) * max(1, int(getattr(img, "n_frames", 1) or 1)))
    return img


def _decode(path: Path, modes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Decode ``path`` once into the requested ``modes`` (``"grey"``, ``"rgb"``); 16-bit stays 16-bit."""
    out: dict[str, np.ndarray] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_checked(path) as img:
                img.load()
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    out = {m: np.asarray(img, dtype=np.float32) for m in modes}
                else:
                    if "grey" in modes:
                        out["grey"] = np.asarray(img.convert("L"), dtype=np.float32)
                    if "rgb" in modes:
                        out["rgb"] = np.asarray(img.convert("RGB"), dtype=np.float32)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    except MemoryError as exc:
        raise ImageReadError(path, "image too large to decode in memory") from exc
    return out


def read_raster_array(path: str | Path, *, grey: bool = True) -> np.ndarray:
    """Pixels of a PNG/JPG/... as an array: ``(rows, cols)`` grey, or ``(rows, cols, 3)`` RGB.

    8-bit images stay in 0..255 and 16-bit in 0..65535 (returned as float32 in both cases). Images of
    more than :func:`max_pixels` pixels are refused from their header, before decoding.
    """
    path = require_nonempty_file(path)
    array = _decode(path, ("grey",) if grey else ("rgb",))["grey" if grey else "rgb"]
    if grey and array.ndim == 3:
        array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return array


def _spread(rgb: np.ndarray) -> np.ndarray:
    """max − min over R, G, B per pixel, in ``rgb``'s own dtype."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # elementwise over the three planes: ~15x faster than a max/min reduction over the short last axis
    return np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)


def chroma_of(rgb: np.ndarray) -> np.ndarray:
    """max − min over R, G, B per pixel (uint8 grey levels, 0 for grey); ``rgb``: 0..255, colour last,
    ``(rows, cols, 3)`` or ``(frames, rows, cols, 3)``."""
    return np.clip(np.rint(_spread(rgb)), 0, 255).astype(np.uint8)


COLOUR_CHROMA = 30.0  # grey levels of max − min over R, G, B above which a pixel counts as coloured


def colour_fraction(rgb: np.ndarray, min_chroma: float = COLOUR_CHROMA) -> float:
    """Share of pixels whose max − min over R, G, B exceeds ``min_chroma`` grey levels (0 for grey).
    ``rgb``: colour last, ``(rows, cols, 3)`` or ``(frames, rows, cols, 3)``."""
    if rgb.ndim < 3 or rgb.shape[-1] < 3:
        return 0.0
    return float((_spread(rgb) > min_chroma).mean())


def coloured_share(chroma: np.ndarray | None, min_chroma: float = COLOUR_CHROMA) -> float:
    """Share of pixels of a :func:`chroma_of` plane above ``min_chroma`` (0 for ``None``: a grey source)."""
    return float((chroma > min_chroma).mean()) if chroma is not None else 0.0


def read_raster(path: str | Path, *, modality: str = "OT") -> MedicalImage:
    """A PNG/JPG/... file as a grey 2D :class:`MedicalImage` (no spacing: JPEGs carry none); the share of
    coloured pixels is kept in ``metadata["ColourFraction"]`` and each pixel's colour in ``chroma`` (the input gates
    read both)."""
    path = require_nonempty_file(path)
    arrays = _decode(path, ("grey", "rgb"))
    grey, rgb = arrays["grey"], arrays["rgb"]
    if grey.ndim == 3:
        grey = grey @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chroma = chroma_of(rgb) if rgb.ndim == 3 else None
    colour = coloured_share(chroma)
    chroma = chroma if chroma is not None and chroma.any() else None  # grey stored as RGB: no chroma kept
    return MedicalImage(pixels=grey, modality=modality, sources=(path,), metadata={"ColourFraction": f"{colour:.4f}"},
                        chroma=chroma)


def read_slice_folder(folder: str | Path, *, modality: str = "OT") -> MedicalImage:
    """A folder of plain slice images as a volume, in natural file-name order (``2.jpg`` < ``10.jpg``).

    The images are taken as already windowed (``is_hu`` is False). Their modality is unknown (``OT``, as
    for one raster) unless given: the input gate then infers it from the pixels (a folder of ultrasound
    JPEGs is not a CT series). See :func:`read_slice_files` for what is refused.
    """
    folder = Path(folder)
    paths = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    if not paths:
        raise ImageReadError(folder, "folder holds no PNG/JPG slice images")
    return read_slice_files(paths, folder, modality=modality)


def read_slice_files(paths: list[Path], where: str | Path, *, modality: str = "OT") -> MedicalImage:
    """Plain slice images, in the order given, as one windowed volume. Refused (``ImageReadError`` naming
    ``where``): slices of different sizes, and slices whose neighbours do not continue one another (anatomy
    jumps: unrelated slices, see :mod:`lesiondx.io.continuity`)."""
    paths = [Path(p) for p in paths]
    slices = [read_raster_array(p) for p in paths]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise ImageReadError(where, f"slice images have different sizes {sorted(shapes)}")
    stack = np.stack(slices)
    require_one_series(stack, paths, where)
    return MedicalImage(pixels=stack, modality=modality, sources=tuple(paths))


def read_nifti(path: str | Path) -> MedicalImage:
    """A NIfTI volume (via nibabel) as ``(slices, rows, cols)``, spacing in mm, superior first; rows run
    anterior → posterior and columns patient right → left (the DICOM/LPS display orientation)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    two_d = False
    try:
        image = nib.load(str(path))
        two_d = len(image.shape) == 2
        if two_d:  # one slice: give it a third axis so it can be reoriented
            image = nib.Nifti1Image(np.asanyarray(image.dataobj)[..., None], image.affine, image.header)
        if len(image.shape) != 3:
            raise ImageReadError(path, f"NIfTI of shape {image.shape}: expected a 2D slice or a 3D volume")
        canonical = nib.as_closest_canonical(image)  # RAS+: indices grow towards right, anterior, superior
        data = np.asanyarray(canonical.dataobj).astype(np.float32)
    except (ImageFileError, OSError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"not a readable NIfTI file ({exc})") from exc
    sx, sy, sz = (float(v) for v in canonical.header.get_zooms()[:3])
    # RAS (x, y, z) → (z, y, x) with z superior first, y anterior → posterior, x right → left
    array = np.ascontiguousarray(data.transpose(2, 1, 0)[::-1, ::-1, ::-1])
    if two_d:
        return MedicalImage(pixels=array[0], spacing=(sy, sx), modality="OT", sources=(path,), is_hu=False)
    return MedicalImage(pixels=array, spacing=(sz, sy, sx), modality="OT", sources=(path,), is_hu=False)
