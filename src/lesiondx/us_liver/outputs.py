"""What ``predict`` says for one ultrasound frame: "no focal lesion found" as its own output (with the
segmenter's lesion probability and its own threshold, never "benign"). The lesion size in mm comes from
:func:`lesiondx.us_liver.inputs.lesion_size_mm` (pixel spacing of ultrasound DICOM regions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesiondx.data import Box

NO_LESION = "no focal lesion found"


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


CANDIDATE_BASIS = ("the segmenter's best candidate region (below the lesion threshold): the distance to the training "
                   "frames is measured on it as if it were the lesion ROI")
PEAK_OUTSIDE = "heat map's peak lies outside the analysed ROI: it does not point at the lesion"


def no_lesion_result(image: str | Path, p_lesion: float, threshold: float, overlay: str | None,
                     model_version: str, seconds: float, ood: dict | None = None) -> dict:
    """The result of a frame without a focal lesion: no box, no malignancy probability, no benign/malignant label;
    ``ood``: the out-of-distribution score measured on the segmenter's best candidate region (``basis`` says so)."""
    return {"image": str(image), "box": None, "roi_source": None, "p_lesion": p_lesion, "lesion_probability": p_lesion,
            "lesion_found": False, "no_lesion_threshold": threshold, "probability": None, "label": NO_LESION,
            "threshold": None, "lesion_size_mm": None, "ood": ood, "overlay": overlay, "model_version": model_version,
            "seconds": seconds}


def heatmap_peak(heatmap: np.ndarray | None, box: Box) -> dict | None:
    """Where the heat map peaks (``x``, ``y`` full-frame px) and whether inside the analysed ROI ``box``;
    ``None`` without a heat map."""
    if heatmap is None or not np.isfinite(heatmap).any() or float(np.nanmax(heatmap)) <= 0:
        return None
    y, x = np.unravel_index(int(np.nanargmax(heatmap)), heatmap.shape)
    inside = bool(box.x1 <= x < box.x2 and box.y1 <= y < box.y2)
    return {"x": int(x), "y": int(y), "inside_roi": inside} | ({} if inside else {"note": PEAK_OUTSIDE})
