"""Scanner-shift appearance augmentation and views that do not carry scanner gain or absolute lesion size.

What changes between ultrasound scanners and exports without changing the tissue: lateral/axial resolution
and export size (``degrade_resolution``), JPEG compression (``jpeg_roundtrip``), overall gain, depth gain
(TGC) and dynamic range/compression curve (``gain_tgc_gamma``), and colour maps later converted to grey
(``tinted_grey``). ``scanner_shift`` draws all of them for one frame. ``liver_z`` normalises a frame by the
liver parenchyma's own mean and spread, so gain does not carry the scanner. ``size_free_crop`` brings every
lesion to one native resolution before the crop is resized, so big and small lesions look alike apart from
their content (the magnified view's blur otherwise encodes absolute size).

All arrays are grey frames or crops, float, 0..255; functions never change the array's shape.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lesiondx.data import Box, square_crop

MIN_WIDTH = 300  # px: the lowest export width drawn by the resolution augmentation (small teaching frames)
SIZE_FREE_PX = 64  # px: native side every lesion crop is brought to in the size-free view (S)
Z_SCALE = 48.0  # grey levels per liver standard deviation in ``liver_z``


def _pil(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(grey, dtype=np.float32), mode="F")


def resample(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize to ``width`` × ``height`` px, anti-aliased when shrinking (PIL's widened support)."""
    return np.asarray(_pil(grey).resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR), dtype=np.float32)


def degrade_resolution(grey: np.ndarray, width: int) -> np.ndarray:
    """The frame as if exported ``width`` px wide (aspect kept) and scaled back up to its own size."""
    h, w = grey.shape
    if width >= w:
        return grey.astype(np.float32)
    small = resample(grey, width, max(1, round(h * width / w)))
    return resample(small, w, h)


def jpeg_roundtrip(grey: np.ndarray, quality: int) -> np.ndarray:
    """Encode as a grey JPEG of ``quality`` (1–95) and decode."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(grey, 0, 255).round().astype(np.uint8), mode="L").save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("L"), dtype=np.float32)


def gain_tgc_gamma(grey: np.ndarray, gain: float, tgc_slope: float, gamma: float) -> np.ndarray:
    """Overall ``gain`` (×), depth gain ``exp(tgc_slope · (row/height − 0.5))`` (time-gain compensation, rows =
    depth) and dynamic range as a power curve ``(x/255)^gamma``; clipped to 0..255."""
    depth = (np.arange(grey.shape[0], dtype=np.float32) + 0.5) / grey.shape[0] - 0.5
    scaled = np.clip(grey / 255.0, 0, 1) ** gamma * gain * np.exp(tgc_slope * depth)[:, None]
    return (np.clip(scaled, 0, 1) * 255).astype(np.float32)


def tinted_grey(grey: np.ndarray, channel_gammas: tuple[float, float, float]) -> np.ndarray:
    """A tinted colour map (per-channel power curves on the grey level) converted back to grey (ITU-R 601
    luma): a monotone tone curve that differs per scanner preset."""
    x = np.clip(grey / 255.0, 0, 1)
    r, g, b = (x ** gm for gm in channel_gammas)
    return ((0.299 * r + 0.587 * g + 0.114 * b) * 255).astype(np.float32)


def scanner_shift(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random scanner/export change of a whole frame (same shape): gain 0.7–1.3, TGC slope ±0.5, gamma
    0.6–1.6, a tinted colour map → grey (half of the draws), export width ``MIN_WIDTH``…own width, JPEG quality
    30–95. Drawn from ``rng`` only."""
    out = gain_tgc_gamma(grey, rng.uniform(0.7, 1.3), rng.uniform(-0.5, 0.5), float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))))
    if rng.random() < 0.5:
        out = tinted_grey(out, tuple(float(v) for v in rng.uniform(0.7, 1.4, size=3)))
    width = int(rng.uniform(min(MIN_WIDTH, grey.shape[1]), grey.shape[1] + 1))
    out = degrade_resolution(out, width)
    return jpeg_roundtrip(out, int(rng.integers(30, 96)))


def liver_z(grey: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """``128 + Z_SCALE · (grey − mean) / sd`` with mean and sd of the pixels in ``region`` (liver background;
    the whole frame's non-black pixels when ``region`` is missing or nearly empty); clipped to 0..255."""
    pixels = grey[region] if region is not None and int(np.count_nonzero(region)) >= 16 else grey[grey > 10]
    if pixels.size < 16:
        pixels = grey.ravel()
    mean, sd = float(pixels.mean()), float(pixels.std())
    return np.clip(128.0 + Z_SCALE * (grey - mean) / max(sd, 1.0), 0, 255).astype(np.float32)


def size_free_crop(grey: np.ndarray, box: Box, margin: float, size: int, native: int = SIZE_FREE_PX) -> np.ndarray:
    """Lesion box + ``margin`` (fraction of its longer side, per side) as a square, brought to ``native`` px
    (anti-aliased) and then to ``size`` px: the same lesion at two scales gives the same crop as long as
    both are at least ``native`` px across."""
    side = max(2, int(round(max(box.width, box.height) * (1 + 2 * margin))))
    patch = square_crop(grey, box.center, side, side)  # native pixels (zoom factor 1), zero-padded at borders
    return resample(resample(patch, native, native), size, size)
