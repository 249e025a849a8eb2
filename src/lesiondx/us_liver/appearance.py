"""Hand-crafted, liver-relative sonographic signs of a focal liver lesion (issue 16 item 3, session 7).

Each sign is measured against the same frame's surrounding liver, so overall gain, dynamic range and the
scanner's grey curve largely cancel, and none of them encodes absolute or relative lesion size (every ring
and band is drawn in proportion to the lesion's equivalent radius ``r = sqrt(area / pi)``):

* ``echo_ratio`` — lesion median / surrounding-liver median grey (unitless; > 1 hyperechoic, < 1 hypoechoic).
* ``iqr_ratio`` — lesion interquartile range / surrounding-liver IQR (internal heterogeneity, unitless).
* ``local_sd_ratio`` — mean local SD (5 × 5 px window) in the lesion core / in the surrounding liver.
* ``halo_vs_lesion``, ``halo_vs_liver`` — mean of the thin band straddling the outline (±``RIM_FRAC`` · r)
  minus the lesion-core median resp. the liver median, in liver SDs (a hypoechoic halo: both < 0).
* ``posterior_ratio`` — median of the band below the lesion (its columns, one lesion height deep) / median of
  the bands beside it at the same depth (> 1 posterior enhancement, < 1 shadowing).
* ``margin_sharpness`` — mean grey-gradient magnitude (Gaussian, sigma 1 px) on the outline, in liver SDs per px.
* ``circularity`` (4 pi area / perimeter^2) and ``solidity`` (area / convex-hull area) — shape without size.

Grey frames are float 0..255 (rows = depth); masks are bool of the same shape. Grey levels get +1 before a
ratio so black pixels never divide by zero; every sign falls back to a neutral value (ratio 1, difference 0)
when its region is too small to measure, so the result is always finite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    import pandas as pd

    from .rois import UsFrame

RIM_FRAC = 0.15  # half-thickness of the outline band, fraction of the lesion's equivalent radius
RING_FRAC = 0.5  # width of the surrounding-liver ring beyond the outline band, fraction of the radius
MIN_RIM_PX = 2.0  # px: the band is at least this thick (small lesions)
MIN_RING_PX = 4.0  # px: the liver ring is at least this wide
MIN_PIXELS = 16  # a region with fewer pixels is not measured (neutral fallback)
LOCAL_WINDOW = 5  # px: window of the local standard deviation
# model inputs (session 7, declared before scoring): ratios enter as logs, differences and shape as they are
RATIOS = ("echo_ratio", "iqr_ratio", "local_sd_ratio", "posterior_ratio")
INPUTS = ("log_echo_ratio", "log_iqr_ratio", "log_local_sd_ratio", "halo_vs_lesion", "halo_vs_liver",
          "log_posterior_ratio", "margin_sharpness", "circularity", "solidity")


@dataclass(frozen=True)
class Appearance:
    """The liver-relative signs of one lesion (see the module docstring for definitions and units)."""

    echo_ratio: float
    iqr_ratio: float
    local_sd_ratio: float
    halo_vs_lesion: float
    halo_vs_liver: float
    posterior_ratio: float
    margin_sharpness: float
    circularity: float
    solidity: float

    def inputs(self) -> dict[str, float]:
        """The model inputs (``INPUTS`` order): log of each ratio, the other signs unchanged."""
        values = asdict(self)
        return {name: (float(np.log(values[name[4:]])) if name.startswith("log_") else float(values[name])) for name in INPUTS}


def _window(lesion: np.ndarray, pad_x: int, pad_top: int, pad_bottom: int) -> tuple[slice, slice]:
    """Row and column slices of the lesion's box grown by the pads (px), clipped to the frame."""
    rows, cols = np.nonzero(lesion)
    h, w = lesion.shape
    return (slice(max(0, rows.min() - pad_top), min(h, rows.max() + 1 + pad_bottom)),
            slice(max(0, cols.min() - pad_x), min(w, cols.max() + 1 + pad_x)))


def _ratio(a: np.ndarray, b: np.ndarray, stat) -> float:
    """``(stat(a) + 1) / (stat(b) + 1)``, or 1.0 when either region has fewer than ``MIN_PIXELS`` pixels."""
    if a.size < MIN_PIXELS or b.size < MIN_PIXELS:
        return 1.0
    return float((stat(a) + 1.0) / (stat(b) + 1.0))


def _iqr(a: np.ndarray) -> float:
    q1, q3 = np.percentile(a, [25, 75])
    return float(q3 - q1)


def local_sd(grey: np.ndarray, window: int = LOCAL_WINDOW) -> np.ndarray:
    """Standard deviation of the grey level in a ``window`` × ``window`` px neighbourhood of each pixel."""
    g = grey.astype(np.float64)
    mean = ndimage.uniform_filter(g, window, mode="reflect")
    sq = ndimage.uniform_filter(g * g, window, mode="reflect")
    return np.sqrt(np.clip(sq - mean * mean, 0.0, None))


def shape_signs(lesion: np.ndarray) -> tuple[float, float]:
    """``(circularity, solidity)`` of a lesion mask: 4 pi area / perimeter^2 (skimage's 4-neighbour perimeter
    estimate; 1 for a disk up to pixelisation) and area / convex-hull area. Unitless, scale-free."""
    from skimage.measure import perimeter
    from skimage.morphology import convex_hull_image

    area = float(lesion.sum())
    per = float(perimeter(lesion, neighborhood=4))
    circ = 4.0 * np.pi * area / per**2 if per > 0 else 1.0
    hull = float(convex_hull_image(lesion).sum())
    return float(circ), (area / hull if hull > 0 else 1.0)


def appearance(grey: np.ndarray, lesion: np.ndarray, liver: np.ndarray | None = None,
               field: np.ndarray | None = None) -> Appearance:
    """The signs of the lesion ``lesion`` in ``grey`` (0..255, rows = depth). ``liver``: the liver outline
    (the surrounding ring is taken inside it; without it, inside ``field``); ``field``: the imaged area
    (scan sector; default: pixels brighter than 10). Raises ValueError for an empty lesion mask or a mask of
    another shape."""
    lesion = np.asarray(lesion, dtype=bool)
    if lesion.shape != grey.shape:
        raise ValueError(f"lesion mask is {lesion.shape}, frame is {grey.shape}")
    if not lesion.any():
        raise ValueError("empty lesion mask")
    if field is None:
        field = grey > 10
    radius = float(np.sqrt(lesion.sum() / np.pi))
    rim = max(MIN_RIM_PX, RIM_FRAC * radius)
    ring = max(MIN_RING_PX, RING_FRAC * radius)
    rows, cols = np.nonzero(lesion)
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    reach = int(np.ceil(rim + ring)) + 2
    win = _window(lesion, max(reach, width), reach, max(reach, height))
    g, les = grey[win].astype(np.float64), lesion[win]
    fld = np.asarray(field, dtype=bool)[win]
    region = np.asarray(liver, dtype=bool)[win] if liver is not None and np.asarray(liver).any() else fld
    d_in = ndimage.distance_transform_edt(les)  # px to the nearest outside pixel (inside the lesion)
    d_out = ndimage.distance_transform_edt(~les)  # px to the nearest lesion pixel (outside)
    core = les & (d_in > rim)
    core = core if core.sum() >= MIN_PIXELS else les
    band = (les & (d_in <= rim)) | (~les & (d_out <= rim))
    liver_ring = ~les & (d_out > rim) & (d_out <= rim + ring) & region
    if liver_ring.sum() < MIN_PIXELS:  # liver outline misses the lesion's surroundings: the imaged area instead
        liver_ring = ~les & (d_out > rim) & (d_out <= rim + ring) & fld
    ring_px = g[liver_ring]
    liver_med = float(np.median(ring_px)) if ring_px.size >= MIN_PIXELS else float(np.median(g[~les]))
    liver_sd = max(1.0, float(ring_px.std()) if ring_px.size >= MIN_PIXELS else float(g[~les].std()))
    sd_map = local_sd(g)
    band_mean = float(g[band].mean())
    core_med = float(np.median(g[core]))
    edge = les & (d_in <= 1.0)
    grad = ndimage.gaussian_gradient_magnitude(g, sigma=1.0)
    circ, solid = shape_signs(les)
    return Appearance(
        echo_ratio=_ratio(g[les], ring_px, np.median),
        iqr_ratio=_ratio(g[les], ring_px, _iqr),
        local_sd_ratio=_ratio(sd_map[core], sd_map[liver_ring], np.mean),
        halo_vs_lesion=(band_mean - core_med) / liver_sd,
        halo_vs_liver=(band_mean - liver_med) / liver_sd,
        posterior_ratio=posterior_ratio(g, les, fld),
        margin_sharpness=float(grad[edge].mean()) / liver_sd,
        circularity=circ,
        solidity=solid,
    )


def posterior_ratio(grey: np.ndarray, lesion: np.ndarray, field: np.ndarray) -> float:
    """Median grey of the band below the lesion (the lesion's columns, from its lowest row down one lesion
    height) over the median of the two bands beside it at the same depth (each one lesion width wide),
    inside ``field`` and outside the lesion. 1.0 (neutral) when a band has fewer than ``MIN_PIXELS`` pixels."""
    rows, cols = np.nonzero(lesion)
    y1, y2 = int(rows.max()) + 1, int(rows.max()) + 1 + int(rows.max() - rows.min() + 1)
    x1, x2 = int(cols.min()), int(cols.max()) + 1
    w = x2 - x1
    ok = field & ~lesion
    depth = np.zeros(lesion.shape, dtype=bool)
    depth[y1:y2] = True
    column = np.zeros(lesion.shape[1], dtype=bool)
    column[x1:x2] = True
    beside = np.zeros(lesion.shape[1], dtype=bool)
    beside[max(0, x1 - w) : x1] = True
    beside[x2 : x2 + w] = True
    return _ratio(grey[depth & column[None] & ok], grey[depth & beside[None] & ok], np.median)


def frame_appearance(frame: UsFrame) -> Appearance:
    """The signs of a frame's lesion mask, against its liver mask, inside its sector (or the bright area)."""
    if frame.lesion is None:
        raise ValueError("the frame has no lesion mask")
    return appearance(frame.grey, frame.lesion, frame.liver, frame.sector)


def appearance_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``image_id`` + the ``INPUTS`` of every row (manifest columns ``image``, ``lesion_mask``, ``liver_mask``,
    ``sector_mask``); a frame that cannot be read raises an error naming its file."""
    import pandas as pd

    from lesiondx.progress import track

    from .rois import read_frame

    out = []
    for row in track(list(rows.itertuples(index=False)), "appearance signs"):
        try:
            signs = frame_appearance(read_frame(row.image, row.lesion_mask, row.liver_mask, row.sector_mask))
        except ValueError as exc:
            raise ValueError(f"{row.image}: {exc}") from exc
        out.append({"image_id": row.image_id, **signs.inputs()})
    return pd.DataFrame(out, columns=["image_id", *INPUTS])
