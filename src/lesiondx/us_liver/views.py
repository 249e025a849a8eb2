"""Torch-free pieces of us-liver inference shared by the ONNX Runtime and torch engines: segmenter input and
the lesion/liver/sector proposal from its probabilities, and the L/B/M/S view crops (clean + TTA copies)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, mask_box
from lesiondx.io.windows import resize

from .config import UsLiverConfig
from .rois import UsFrame, augment, background_crop, fixed_side, jitter_box, lesion_crop, sector_box
from .shift import liver_z, scanner_shift, size_free_crop

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


def cam_view(views: str) -> str:
    """The lesion view the heat map is drawn on: ``L`` (fixed scale) when used, else ``M``, else ``S`` (``M`` and
    ``S`` cover the same box + margin of the frame)."""
    for view in "LMS":
        if view in views:
            return view
    raise ValueError(f"views {views!r} have no lesion view (L, M or S)")


def prepared(frame: UsFrame, cfg: UsLiverConfig, rng: np.random.Generator | None = None) -> UsFrame:
    """The frame the crops are cut from: with ``rng`` a random ``scanner_shift`` of it, then (``cfg.intensity_norm``
    ``liver_z``) z-scored on its liver background (liver minus the dilated lesion)."""
    grey = scanner_shift(frame.grey, rng) if rng is not None else frame.grey
    if cfg.intensity_norm == "liver_z":
        region = frame.liver if frame.liver is not None else frame.sector
        if region is not None and frame.lesion is not None:
            region = region & ~ndimage.binary_dilation(frame.lesion, iterations=max(1, cfg.background_margin_px))
        grey = liver_z(grey, region)
    return replace(frame, grey=grey)


def _lesion_view(view: str, grey: np.ndarray, box: Box, side: float, cfg: UsLiverConfig) -> np.ndarray:
    """One lesion view crop: ``L`` fixed scale (``side`` px), ``M`` magnified, ``S`` size-free."""
    if view == "S":
        return size_free_crop(grey, box, cfg.crop_margin, cfg.crop_size, cfg.size_free_px)
    return lesion_crop(grey, box, side if view == "L" else MAGNIFIED_SIDE, cfg.crop_size, cfg.crop_margin)


def _shifted_view_crops(frame: UsFrame, cfg: UsLiverConfig, rng: np.random.Generator, copies: int) -> dict[str, np.ndarray]:
    """``augment_policy: scanner``: copy 0 clean; every other copy from its own ``scanner_shift`` of the frame,
    box jitter (L also ±10 % scale), then the ``speckle`` crop augmentation."""
    box = mask_box(frame.lesion)
    side = fixed_side(sector_box(frame), cfg.crop_side_frac)
    out: dict[str, list[np.ndarray]] = {v: [] for v in cfg.views}
    for k in range(copies + 1):
        f = prepared(frame, cfg, rng if k else None)
        b, s = (jitter_box(box, rng), side * rng.uniform(0.9, 1.1)) if k else (box, side)
        for v in cfg.views:
            crop = (background_crop(f, f.lesion, cfg.crop_size, cfg.background_margin_px) if v == "B"
                    else _lesion_view(v, f.grey, b, s, cfg))
            out[v].append(augment(crop, rng, policy="speckle") if k else crop)
    return {v: np.stack(c) for v, c in out.items()}


def view_crops(frame: UsFrame, cfg: UsLiverConfig, rng: np.random.Generator, copies: int) -> dict[str, np.ndarray]:
    """``{view: (copies+1, S, S)}`` crops 0..255 for ``cfg.views``; copy 0 is clean. (The ``speckle`` and
    ``trivialaugment`` draws keep the order of the shipped model, so its TTA crops are unchanged.)"""
    if frame.lesion is None:
        raise ValueError("no lesion mask or proposal")
    if cfg.augment_policy == "scanner":
        return _shifted_view_crops(frame, cfg, rng, copies)
    frame = prepared(frame, cfg)
    les, bg = frame_crops(frame, cfg, rng, copies)
    out = {"L": les, "B": bg}
    box = mask_box(frame.lesion)
    for v in "MS":
        if v in cfg.views:
            crops = [_lesion_view(v, frame.grey, box, 0.0, cfg)]
            for _ in range(copies):
                crops.append(augment(_lesion_view(v, frame.grey, jitter_box(box, rng), 0.0, cfg), rng, policy=cfg.augment_policy))
            out[v] = np.stack(crops)
    return {v: out[v] for v in cfg.views}
