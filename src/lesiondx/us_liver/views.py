"""Torch-free pieces of us-liver inference shared by the ONNX Runtime and torch engines: segmenter input and
the lesion/liver/sector proposal from its probabilities, and the L/B/M view crops (clean + TTA copies)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, mask_box
from lesiondx.io.windows import resize

from .config import UsLiverConfig
from .rois import UsFrame, augment, background_crop, fixed_side, jitter_box, lesion_crop, sector_box

CHANNELS = ("lesion", "liver", "sector")
MAGNIFIED_SIDE = 16.0  # px: below any lesion box, so the M crop is the box + margin


@dataclass(frozen=True)
class Proposal:
    """Masks proposed on the full frame (bool) and the lesion box (``None`` if nothing found)."""

    lesion: np.ndarray
    liver: np.ndarray
    sector: np.ndarray
    box: Box | None
    lesion_probability: float  # peak lesion probability of the segmenter


def seg_input_array(grey: np.ndarray, size: int) -> np.ndarray:
    """Frame (0..255) → ``(1, 1, size, size)`` float32 in [-1, 1] (Lite0 normalisation)."""
    small = resize(grey.astype(np.float32), (size, size), order=1)
    return (small / 127.5 - 1.0)[None, None].astype(np.float32)


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def proposal_from_probs(prob: np.ndarray, shape: tuple[int, int]) -> Proposal:
    """Masks on a ``shape`` frame from the segmenter's ``(3, S, S)`` probabilities; the lesion is the component
    holding the highest lesion probability (threshold 0.5, lowered to half the peak when nothing passes)."""
    lesion_p, liver_p, sector_p = (resize(p, shape, order=1) for p in prob)
    peak = float(lesion_p.max())
    lesion = lesion_p >= min(0.5, 0.5 * peak)
    labels, n = ndimage.label(lesion)
    if n > 1:
        lesion = labels == labels.flat[int(np.argmax(np.where(lesion, lesion_p, -1)))]
    liver = _largest(liver_p >= 0.5)
    sector = _largest(sector_p >= 0.5)
    return Proposal(lesion, liver, sector, mask_box(lesion) if lesion.any() else None, peak)


def frame_crops(frame: UsFrame, cfg: UsLiverConfig, rng: np.random.Generator, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lesion crops, background crops)`` each ``(copies+1, S, S)`` in 0..255; copy 0 is clean."""
    if frame.lesion is None:
        raise ValueError("no lesion mask or proposal")
    box = mask_box(frame.lesion)
    side = fixed_side(sector_box(frame), cfg.crop_side_frac)
    size = cfg.crop_size
    les = [lesion_crop(frame.grey, box, side, size, cfg.crop_margin)]
    bg0 = background_crop(frame, frame.lesion, size, cfg.background_margin_px)
    bgs = [bg0]
    for _ in range(copies):
        jittered = jitter_box(box, rng)
        les.append(augment(lesion_crop(frame.grey, jittered, side * rng.uniform(0.9, 1.1), size, cfg.crop_margin), rng,
                           policy=cfg.augment_policy))
        bgs.append(augment(bg0, rng, policy=cfg.augment_policy))
    return np.stack(les), np.stack(bgs)


def view_crops(frame: UsFrame, cfg: UsLiverConfig, rng: np.random.Generator, copies: int) -> dict[str, np.ndarray]:
    """``{view: (copies+1, S, S)}`` crops 0..255 for ``cfg.views``; copy 0 is clean."""
    les, bg = frame_crops(frame, cfg, rng, copies)
    out = {"L": les, "B": bg}
    if "M" in cfg.views:
        box = mask_box(frame.lesion)
        mags = [lesion_crop(frame.grey, box, MAGNIFIED_SIDE, cfg.crop_size, cfg.crop_margin)]
        for _ in range(copies):
            mags.append(augment(lesion_crop(frame.grey, jitter_box(box, rng), MAGNIFIED_SIDE, cfg.crop_size,
                                            cfg.crop_margin), rng, policy=cfg.augment_policy))
        out["M"] = np.stack(mags)
    return {v: out[v] for v in cfg.views}
