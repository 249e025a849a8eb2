"""Lung field of an axial chest-CT slice: the air inside the body, closed so lesions stay inside."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, disk_closing, mask_box


def lung_field(
    grey: np.ndarray,
    threshold: float,
    *,
    min_area: float = 0.002,
    closing: float = 0.05,
    remove_border_air: bool = True,
    max_components: int = 2,
) -> np.ndarray:
    """Boolean lung mask of one slice.

    Args:
        grey: 2-D slice (HU or windowed grey levels; ``threshold`` in the same unit).
        threshold: air is ``grey < threshold`` (e.g. -400 HU, or its grey level).
        min_area: smallest kept air component, as a fraction of the slice area.
        closing: radius of the closing disk as a fraction of the longer side (pulls in vessels,
            nodules and pleura-based consolidation).
        remove_border_air: drop air connected to the image border (outside the body, under the
            table). Turn off for slices already cropped to the chest, whose lungs touch the border.
        max_components: keep at most this many largest air components (two lungs).
    """
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2:
        raise ValueError(f"lung_field needs a 2-D slice, got shape {grey.shape}")
    air = grey < threshold
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros_like(air)
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    if remove_border_air:
        border = np.zeros(n + 1, dtype=bool)  # air components touching the image border (label lookup)
        border[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
        border[0] = False
        keep &= ~border
        # the body is the largest region not connected to outside air; lungs lie within it
        inner, n_inner = ndimage.label(~border[labels])
        if n_inner > 1:
            main = inner == (int(np.argmax(np.bincount(inner.ravel())[1:])) + 1)
            touches = np.zeros(n + 1, dtype=bool)
            touches[labels[main]] = True
            keep[1:] &= touches[1:]
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    sizes = np.where(keep[1:], sizes, 0)
    order = np.argsort(sizes)[::-1][:max_components]
    chosen = np.zeros(n + 1, dtype=bool)
    chosen[[i + 1 for i in order if sizes[i] >= min_area * air.size]] = True
    mask = chosen[labels]
    box = mask_box(mask)  # the closing and the filled holes lie inside it: work there (same pixels, less work)
    if box is None:
        return mask
    field = mask[box.y1 : box.y2, box.x1 : box.x2]
    radius = closing * max(grey.shape)
    if radius >= 1:
        field = disk_closing(field, radius)
    out = np.zeros_like(mask)
    out[box.y1 : box.y2, box.x1 : box.x2] = ndimage.binary_fill_holes(np.pad(field, 1))[1:-1, 1:-1]
    return out


def crop_box(masks: np.ndarray, margin: float = 0.06) -> Box | None:
    """Box around the union of the lung masks of a series (``(S, H, W)`` or one ``(H, W)``), grown
    by ``margin`` × its longer side on each edge and clipped to the slice; ``None`` when empty."""
    masks = np.asarray(masks, dtype=bool)
    union = masks.any(axis=0) if masks.ndim == 3 else masks
    box = mask_box(union)
    if box is None:
        return None
    grow = int(round(margin * max(box.width, box.height)))
    h, w = union.shape
    return Box(max(0, box.x1 - grow), max(0, box.y1 - grow), min(w, box.x2 + grow), min(h, box.y2 + grow))
