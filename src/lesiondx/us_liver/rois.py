"""Ultrasound ROIs at a fixed scale: grey frames, lesion and liver-background crops, augmentation,
and the mask-derived ultrasonic factors (relative lesion size, lesion depth in the sector)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, background_roi, lesion_roi, mask_box
from lesiondx.io import ImageReadError
from lesiondx.io.raster import read_raster_array


@dataclass(frozen=True)
class UsFrame:
    """One B-mode frame in grey (0..255) with its masks (bool, same shape; ``None`` when absent)."""

    grey: np.ndarray
    lesion: np.ndarray | None
    liver: np.ndarray | None
    sector: np.ndarray | None


def _mask(path: object, shape: tuple[int, int], what: str) -> np.ndarray | None:
    if path is None or (isinstance(path, float) and np.isnan(path)) or not str(path):
        return None
    if not Path(str(path)).is_file():
        return None
    mask = read_raster_array(str(path), grey=True) > 127
    if mask.shape != shape:
        raise ImageReadError(f"{path}: {what} mask is {mask.shape}, image is {shape}")
    return mask if mask.any() else None


def read_frame(image: str | Path | np.ndarray, lesion: object = None, liver: object = None, sector: object = None) -> UsFrame:
    """A frame converted to grey (colour tint is a scanner cue) with its optional masks; ``image`` is a
    raster path or an already decoded grey frame (0..255, e.g. from a DICOM file)."""
    if isinstance(image, np.ndarray):
        grey = image.astype(np.float32)
    else:
        grey = read_raster_array(str(image), grey=True).astype(np.float32)
    if grey.ndim != 2:
        raise ImageReadError(f"{image}: expected a 2D ultrasound frame, got shape {grey.shape}")
    shape = grey.shape
    return UsFrame(grey, _mask(lesion, shape, "lesion"), _mask(liver, shape, "liver"), _mask(sector, shape, "sector"))


def sector_box(frame: UsFrame) -> Box:
    """Box of the scan sector; without a sector mask, of the pixels brighter than 10 (fan area)."""
    if frame.sector is not None:
        box = mask_box(frame.sector)
        if box is not None:
            return box
    bright = ndimage.binary_opening(frame.grey > 10, iterations=2)
    box = mask_box(bright)
    return box if box is not None else Box(0, 0, frame.grey.shape[1], frame.grey.shape[0])


def fixed_side(sector: Box, frac: float) -> float:
    """Crop side (px) for lesion ROIs: ``frac`` of the sector width, so small lesions stay small."""
    return max(16.0, frac * sector.width)


def lesion_crop(grey: np.ndarray, box: Box, side: float, size: int, margin: float) -> np.ndarray:
    """Square lesion crop (0..255) of at least ``side`` px, resized to ``size``²."""
    return lesion_roi(grey, box=box, margin=margin, size=size, side=side)


def background_crop(frame: UsFrame, lesion: np.ndarray | None, size: int, margin_px: int) -> np.ndarray:
    """Liver parenchyma outside the dilated lesion; falls back to the sector, then the whole frame."""
    for region in (frame.liver, frame.sector, np.ones_like(frame.grey, dtype=bool)):
        if region is None:
            continue
        try:
            return background_roi(frame.grey, region, lesion, margin_px=margin_px, size=size)
        except ValueError:
            continue
    raise ValueError("no background region")


AUGMENT_POLICIES = ("speckle", "trivialaugment", "scanner")  # scanner: frame-level shift, then speckle


def augment(crop: np.ndarray, rng: np.random.Generator, *, max_rotation: float = 12.0,
            policy: str = "speckle") -> np.ndarray:
    """Random flip, then ``policy``: ``speckle`` = small rotation, gamma/contrast change and multiplicative
    speckle-like noise; ``trivialaugment`` = one TrivialAugmentWide operation (torchvision) of random
    strength. Both are drawn from ``rng`` only (reproducible)."""
    out = crop[:, ::-1] if rng.random() < 0.5 else crop
    if policy == "trivialaugment":
        return _trivial_augment(out, rng)
    if policy != "speckle":
        raise ValueError(f"augment policy must be one of {AUGMENT_POLICIES}, not {policy!r}")
    angle = rng.uniform(-max_rotation, max_rotation)
    out = ndimage.rotate(out, angle, reshape=False, order=1, mode="reflect")
    scaled = np.clip(out / 255.0, 0, 1) ** rng.uniform(0.8, 1.25)
    scaled = scaled * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    speckle = rng.gamma(shape=20.0, scale=1 / 20.0, size=scaled.shape)  # mean 1, sd ~0.22
    mix = rng.uniform(0.0, 0.5)
    scaled = scaled * (1 - mix + mix * speckle)
    return (np.clip(scaled, 0, 1) * 255).astype(np.float32)


def _trivial_augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One TrivialAugmentWide op on a grey crop (0..255); torch's RNG is seeded from ``rng`` inside a fork,
    so the global torch random state is left as it was."""
    import torch
    from torchvision.transforms import v2

    image = torch.from_numpy(np.clip(crop, 0, 255).astype(np.uint8).copy())[None]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        out = v2.TrivialAugmentWide()(image)
    return out[0].numpy().astype(np.float32)


def jitter_box(box: Box, rng: np.random.Generator, frac: float = 0.08) -> Box:
    """Shift a box by up to ``frac`` of its size (imperfect ROI proposals at inference)."""
    dx, dy = (rng.uniform(-frac, frac) * box.width, rng.uniform(-frac, frac) * box.height)
    return Box(int(box.x1 + dx), int(box.y1 + dy), int(box.x2 + dx), int(box.y2 + dy))


def ultrasonic_factors(lesion: np.ndarray, sector: Box) -> dict[str, float]:
    """Mask-derived factors: lesion size relative to the sector width (sqrt area / width) and depth
    of the lesion centre below the top of the sector (fraction of sector height). Unitless."""
    box = mask_box(lesion)
    if box is None:
        raise ValueError("empty lesion mask")
    size = float(np.sqrt(lesion.sum())) / max(1, sector.width)
    depth = (box.center[1] - sector.y1) / max(1, sector.height)
    return {"lesion_size_rel": size, "lesion_depth_rel": float(depth)}
