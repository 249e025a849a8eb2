"""us-liver inputs as people hand them over: JPEG/PNG frames and ultrasound DICOM (single-frame, or cine:
every frame or a chosen one), gated before any model runs, with pixel spacing when the file carries it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesiondx.gate import GateVerdict, require
from lesiondx.gate.us_liver import blank_reason
from lesiondx.io import ImageReadError, read_image
from lesiondx.io.raster import RASTER_SUFFIXES


@dataclass(frozen=True)
class UsInput:
    """One frame to score: its file, frame index (cine) or ``None``, grey pixels 0..255, mm per pixel
    ``(row, col)`` when known, the gate's verdict and the reader's warnings."""

    path: Path
    frame: int | None
    grey: np.ndarray
    spacing_mm: tuple[float, float] | None
    verdict: GateVerdict
    warnings: tuple[str, ...]


def to_grey_255(pixels: np.ndarray) -> np.ndarray:
    """Grey levels in 0..255: 8-bit data as it is, wider data (12/16-bit) stretched min..max."""
    pixels = np.asarray(pixels, dtype=np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    if low >= 0 and high <= 255:
        return pixels
    return (pixels - low) * (255.0 / max(high - low, 1e-6))


def read_us_inputs(paths: list[Path], frame: int | None = None) -> list[UsInput]:
    """Every frame to score; ``frame`` (0-based) picks one frame of each multi-frame file. Raises
    ``ImageReadError`` (``InputRefused`` when the gate refuses; a blank cine frame) naming the file."""
    items: list[UsInput] = []
    for path in map(Path, paths):
        if path.is_dir():
            raise ImageReadError(path, "us-liver reads single image files (JPEG/PNG or ultrasound DICOM), not folders")
        if frame not in (None, 0) and path.suffix.lower() in RASTER_SUFFIXES:
            raise ImageReadError(path, f"frame {frame} does not exist (a {path.suffix} file holds one frame; --frame "
                                       "picks a frame of a multi-frame ultrasound DICOM)")
        image = read_image(path, frame=frame)
        verdict = require("us-liver", image, path)  # a cine: every frame's sector (gate.us_liver.clip_checks)
        spacing = (float(image.spacing[-2]), float(image.spacing[-1])) if image.spacing is not None else None
        if image.is_volume:
            for i in range(image.n_slices):
                if blank := blank_reason(image.pixels[i]):  # the gate's blank check reads the clip as a whole
                    raise ImageReadError(path, f"refused for task us-liver: frame {i}: {blank}; score the other "
                                               "frames one at a time with --frame N")
                items.append(UsInput(path, i, to_grey_255(image.pixels[i]), spacing, verdict, image.warnings))
        else:
            items.append(UsInput(path, frame, to_grey_255(image.pixels), spacing, verdict, image.warnings))
    return items


def lesion_size_mm(width_px: int, height_px: int, spacing: tuple[float, float] | None) -> dict[str, float] | None:
    """Lesion box width and height in mm from pixel spacing ``(row, col)``; ``None`` without spacing."""
    if spacing is None:
        return None
    return {"width_mm": round(width_px * spacing[1], 1), "height_mm": round(height_px * spacing[0], 1)}
