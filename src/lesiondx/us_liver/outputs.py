"""What ``predict`` says for one ultrasound frame: "no focal lesion found" as its own output (with the
segmenter's lesion probability and its own threshold, never "benign"), and the lesion size in mm when
the file carries a pixel spacing."""

from __future__ import annotations

from pathlib import Path

from lesiondx.data import Box
from lesiondx.io import ImageReadError

NO_LESION = "no focal lesion found"
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def pixel_spacing(image: str | Path) -> tuple[float, float] | None:
    """``(row, col)`` mm per pixel from the file's metadata (DICOM PixelSpacing, or the ultrasound region
    calibration where the reader provides it as ``spacing``); ``None`` for PNG/JPG (they carry none) or
    when unknown. Hook: any reader that fills ``MedicalImage.spacing`` makes sizes come out in mm."""
    if Path(image).suffix.lower() in RASTER_SUFFIXES:
        return None
    from lesiondx.io import read_image

    try:
        spacing = read_image(image).spacing
    except (ImageReadError, OSError, ValueError):
        return None
    if spacing is None or len(spacing) < 2 or min(spacing[-2:]) <= 0:
        return None
    return float(spacing[-2]), float(spacing[-1])


def lesion_size_mm(box: Box, spacing: tuple[float, float] | None) -> dict[str, float] | None:
    """Width and height (mm) of the lesion box; ``None`` without a pixel spacing."""
    if spacing is None:
        return None
    row_mm, col_mm = spacing
    return {"width_mm": round(box.width * col_mm, 1), "height_mm": round(box.height * row_mm, 1)}


def no_lesion_below(model: str | Path, default: float) -> float:
    """The lesion-presence threshold of ``model``: ``no_lesion_below`` of the ``config.yaml`` beside its
    checkpoint when that file sets it (the shipped threshold lives there), else ``default`` (the checkpoint's)."""
    import yaml

    from .inference import resolve_model

    path = resolve_model(model).parent / "config.yaml"
    if path.is_file():
        value = (yaml.safe_load(path.read_text()) or {}).get("no_lesion_below")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not 0 <= value <= 1:
                raise ValueError(f"{path}: no_lesion_below must lie in [0, 1], not {value}")
            return float(value)
    return default


def lesion_present(p_lesion: float, threshold: float, roi_source: str) -> bool:
    """A lesion is there when the user gave its ROI, or the segmenter's peak lesion probability reaches
    the no-lesion threshold (``no_lesion_below``, chosen on training frames: MODEL_CARD.md)."""
    return roi_source == "user" or p_lesion >= threshold


def no_lesion_result(image: str | Path, p_lesion: float, threshold: float, overlay: str | None,
                     model_version: str, seconds: float) -> dict:
    """The result of a frame without a focal lesion: no box, no malignancy probability, no benign/malignant label."""
    return {"image": str(image), "box": None, "roi_source": None, "p_lesion": p_lesion, "lesion_probability": p_lesion,
            "lesion_found": False, "no_lesion_threshold": threshold, "probability": None, "label": NO_LESION,
            "threshold": None, "lesion_size_mm": None, "overlay": overlay, "model_version": model_version,
            "seconds": seconds}
