"""Display windows (HU → grey) and resampling helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .image import MedicalImage


@dataclass(frozen=True)
class Window:
    """A CT display window: centre and width in HU."""

    center: float
    width: float

    @property
    def low(self) -> float:
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        return self.center + self.width / 2


WINDOWS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0),
    "abdomen": Window(40.0, 400.0),
    "liver": Window(60.0, 160.0),
    "mediastinum": Window(50.0, 350.0),
    "bone": Window(400.0, 1800.0),
}


def get_window(window: str | Window | tuple[float, float]) -> Window:
    """A :class:`Window` from a preset name, ``"center,width"`` text (HU, e.g. ``"40,350"``), a Window,
    or ``(center, width)``."""
    if isinstance(window, Window):
        return window
    if isinstance(window, str) and "," in window:
        try:
            center, width = (float(v) for v in window.split(","))
        except ValueError:
            raise ValueError(f"window {window!r}: expected 'center,width' in HU, e.g. '40,350'") from None
        window = (center, width)
    elif isinstance(window, str):
        try:
            return WINDOWS[window.lower()]
        except KeyError:
            raise ValueError(f"unknown window {window!r}; presets: {', '.join(WINDOWS)} or 'center,width'") from None
    center, width = window
    if not float(width) > 0:
        raise ValueError(f"window width must be positive, not {width}")
    return Window(float(center), float(width))


def apply_window(hu: np.ndarray, window: str | Window | tuple[float, float]) -> np.ndarray:
    """Map HU to display grey levels in ``[0, 255]`` (float32), clipping outside the window."""
    w = get_window(window)
    scaled = (np.asarray(hu, dtype=np.float32) - w.low) / w.width
    return np.clip(scaled, 0.0, 1.0) * 255.0


def display_grey(pixels: np.ndarray, is_hu: bool, window: str | Window | tuple[float, float] = "abdomen") -> np.ndarray:
    """Grey levels 0..255: windowed when ``pixels`` are HU, else 16-bit values scaled by their maximum."""
    if is_hu:
        return apply_window(pixels, window)
    pixels = np.asarray(pixels, dtype=np.float32)
    top = float(pixels.max()) if pixels.size else 0.0
    return pixels if top <= 255.0 else pixels * (255.0 / top)


def to_display(image: MedicalImage, window: str | Window | tuple[float, float] = "abdomen") -> np.ndarray:
    """:func:`display_grey` of an image's pixels."""
    return display_grey(image.pixels, image.is_hu, window)


def resize(array: np.ndarray, shape: tuple[int, ...], *, order: int = 1) -> np.ndarray:
    """Resize an array to ``shape`` by spline interpolation (order 0 for masks and labels)."""
    factors = [t / s for t, s in zip(shape, array.shape)]
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    return out[tuple(slice(0, t) for t in shape)]


def resample(image: MedicalImage, spacing: tuple[float, ...], *, order: int = 1) -> MedicalImage:
    """Resample to a new pixel spacing in mm (same number of axes as ``image.spacing``)."""
    if image.spacing is None:
        raise ValueError("image has no spacing to resample from")
    if len(spacing) != len(image.spacing):
        raise ValueError(f"spacing {spacing} does not match the image's {len(image.spacing)} axes")
    shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(image.pixels.shape, image.spacing, spacing))
    return image.with_pixels(resize(image.pixels, shape, order=order).astype(np.float32), tuple(spacing))
