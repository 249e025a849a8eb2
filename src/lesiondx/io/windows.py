"""Display windows (HU → grey) and resampling helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage  # scipy.signal (with scipy.stats: ~0.5 s) is imported where a window is estimated

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


AUTO = "auto"  # a window option meaning "estimate it from the image" (:func:`estimate_window`)


def parse_window_option(window: str | Window | tuple[float, float]) -> Window | str:
    """``AUTO`` for ``"auto"`` (any case, spaces ignored), else :func:`get_window` of it (ValueError when
    malformed): the one reader of a user's window option, so a bad one fails before any image is read."""
    if isinstance(window, str) and window.strip().lower() == AUTO:
        return AUTO
    return get_window(window.strip() if isinstance(window, str) else window)


def apply_window(hu: np.ndarray, window: str | Window | tuple[float, float]) -> np.ndarray:
    """Map HU to display grey levels in ``[0, 255]`` (float32), clipping outside the window."""
    w = get_window(window)
    hu = np.asarray(hu, dtype=np.float32)
    scaled = np.subtract(hu, np.float32(w.low), out=np.empty(hu.shape, np.float32))  # one new array, then in place
    scaled /= np.float32(w.width)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= np.float32(255.0)
    return scaled if scaled.ndim else scaled[()]


def grey_to_hu(grey: np.ndarray, window: str | Window | tuple[float, float]) -> np.ndarray:
    """The inverse of :func:`apply_window`: grey levels 0..255 shown with ``window`` back to HU (float32; values
    outside the window were clipped by the export and stay at its ends)."""
    w = get_window(window)
    return np.asarray(grey, dtype=np.float32) / np.float32(255.0) * np.float32(w.width) + np.float32(w.low)


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


FAT_HU = -100.0  # subcutaneous and visceral fat, typical CT value
SOFT_TISSUE_HU = 50.0  # muscle and parenchyma, typical CT value (contrast-enhanced liver sits higher)
_PLAUSIBLE_CENTER = (-50.0, 200.0)  # HU: soft-tissue windows whose export can be inverted here
_PLAUSIBLE_WIDTH = (150.0, 1000.0)
BLACK_GREY = 6  # grey levels up to this count as black air around the body (JPEG ringing lifts it a little)
PEAK_PROMINENCE = 0.1  # a histogram peak counts when it stands this share of the highest bin above its valleys


@dataclass(frozen=True)
class WindowEstimate:
    """The display window 8-bit CT slices were probably exported with (``window``; ``None`` with a ``reason``
    when it cannot be told), from the grey levels (0..255) of the body's fat and soft-tissue peaks."""

    window: Window | None
    fat_grey: float | None = None
    soft_grey: float | None = None
    reason: str = ""


def _refine(hist: np.ndarray, i: int) -> float:
    """Sub-bin position of the peak at bin ``i`` (parabola through it and its neighbours)."""
    if 0 < i < len(hist) - 1:
        a, b, c = hist[i - 1], hist[i], hist[i + 1]
        if a - 2 * b + c < 0:
            return i + 0.5 * (a - c) / (a - 2 * b + c)
    return float(i)


def estimate_window(grey: np.ndarray, fat_hu: float = FAT_HU, soft_hu: float = SOFT_TISSUE_HU) -> WindowEstimate:
    """Guess the window 8-bit CT slices ``(S, H, W)`` or ``(H, W)`` were exported with.

    Inside the body (the largest region above clipped air), the histogram of unclipped grey levels has a
    fat peak (the lowest prominent one) and a soft-tissue (muscle) peak next above it, below any
    contrast-enhanced organ peak; mapping them to ``fat_hu`` and ``soft_hu`` gives width and level. The
    fat–muscle gap measured 145–160 HU on real chest and abdominal CT, so whole volumes come out within about
    ±7 % in width (±20 HU in level). On a few liver-level slices the enhanced liver or another large organ
    can be taken for muscle (width off by up to ±27 %). Windows so narrow that fat is clipped to black (liver
    windows), without black air (lung windows, crops) or implausible for soft tissue give ``window=None``
    and a ``reason``."""
    slices = np.asarray(grey, dtype=np.float32)
    slices = slices[None] if slices.ndim == 2 else slices
    counts, black, total = np.zeros(256), 0, 0
    for sl in slices[:: max(1, len(slices) // 24)]:
        black, total = black + int((sl <= BLACK_GREY).sum()), total + sl.size
        body = ndimage.binary_fill_holes(ndimage.binary_opening(sl > 0.5, iterations=2))
        labels, n = ndimage.label(body)
        if n == 0:
            continue
        body = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        values = np.rint(sl[body & (sl > 0.5) & (sl < 254.5)]).astype(int)
        counts += np.bincount(values, minlength=256)[:256]
    if counts.sum() < 1000:
        return WindowEstimate(None, reason="too few body pixels between black and white")
    if black < 0.05 * total:
        return WindowEstimate(None, reason="no black air around the body (not a soft-tissue window, or cropped)")
    hist = np.zeros(256)  # black and white bins left out: a tissue clipped there must not look like a peak
    hist[1:255] = ndimage.gaussian_filter1d(counts[1:255], 2.0, mode="nearest")
    from scipy import signal

    peaks = [int(p) for p in signal.find_peaks(hist[1:255], prominence=PEAK_PROMINENCE * hist.max())[0] + 1]
    fat = peaks[0] if peaks else None
    above = [p for p in peaks if fat is not None and p >= fat + 12]
    soft = above[0] if above else None
    if fat is None or soft is None:
        return WindowEstimate(None, fat, soft, "no separate fat and soft-tissue peaks (fat clipped to black, "
                                               "or not a soft-tissue window)")
    fat_grey, soft_grey = _refine(hist, fat), _refine(hist, soft)
    width = 255.0 * (soft_hu - fat_hu) / (soft_grey - fat_grey)
    low = fat_hu - fat_grey / 255.0 * width
    window = Window(low + width / 2, width)
    if not (_PLAUSIBLE_WIDTH[0] <= width <= _PLAUSIBLE_WIDTH[1]
            and _PLAUSIBLE_CENTER[0] <= window.center <= _PLAUSIBLE_CENTER[1]):
        return WindowEstimate(None, fat_grey, soft_grey, f"implausible soft-tissue window (centre "
                                                         f"{window.center:.0f}, width {window.width:.0f} HU; fat "
                                                         f"clipped to black?)")
    return WindowEstimate(window, fat_grey, soft_grey)
