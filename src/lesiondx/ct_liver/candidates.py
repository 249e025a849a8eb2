"""Rule-based liver-lesion detector (no learned weights) for contrast-enhanced (portal-venous) CT.

Most liver lesions on portal-venous CT (metastases, cholangiocarcinoma, washed-out HCC, cysts,
abscesses) are darker than the enhanced parenchyma around them. The detector therefore looks for
regions **darker than the liver's own median HU by a contrast margin** (relative, never absolute HU),
inside the liver and a few mm around it, and keeps them only when they look like a lesion:

* size: each cross-section's inscribed diameter (2 × its largest distance to its border) is at least
  ``min_mm`` and its equivalent diameter at most ``max_mm`` (thin bile ducts, fissures and unenhanced
  vessel segments are tubes a few mm wide; lesions are blobs);
* shape: minor/major axis ratio ≥ ``MIN_ROUNDNESS`` and solidity ≥ ``MIN_SOLIDITY`` (lesions are round
  or oval and convex; ducts, vessels, the liver-edge rim and leaks into neighbouring organs are not);
* embedding: at least ``MIN_RING_PARENCHYMA`` of a ``RING_MM`` ring around it is liver parenchyma
  (an intrahepatic lesion is surrounded by liver; hilum fat, fissures, bowel and lung are not);
* 3D consistency: cross-sections on adjacent slices that overlap are chained into one lesion, which
  must span ≥ ``min_slices`` slices (a lesion ≥ 5 mm crosses ≥ 2 slices at the ≤ 2.5 mm spacing of a
  portal-venous study; single-slice blips are noise);
* the liver-edge partial-volume rim is removed before thresholding: every voxel within ``RIM_MM`` of
  fat or gas is ignored (voxels there mix liver with fat and look "hypodense").

Score (0..1, one per lesion chain) = (local contrast − margin) / (``SCORE_SPAN`` × margin), clipped,
where local contrast = the lesion's mean HU minus the median of the parenchyma in its ring; the
usual 0.25 threshold therefore means "≥ 1.5 × the contrast margin darker than the liver around it".
``polarity="hyper"`` runs the same rules for regions **brighter** than the liver by the margin
(arterial hyperenhancement: HCC, FNH, haemangioma nodules); everything else is mirrored, not changed.

Each candidate carries the fraction of its own voxels inside the liver mask, which is what the liver
filter judges (not the box).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.data import Box

from .edge import enveloped_fraction

RULES_VERSION = "lesion-3d-rules-2026-12-05b"  # b: envelope_fraction (claw rule) per candidate  # bump when a rule or threshold below changes
WORK_MM = 1.2  # candidate search runs on pixels of about this size (mm): a 5 mm lesion is ≥ 4 px across
FAT_HU = -30.0  # between fat (≈ −100 HU) and water (0 HU): below it a voxel is fat or gas, not parenchyma
RIM_MM = 2.0  # partial-volume rim: ~1 voxel + reconstruction blur ≈ 1.5–2 mm next to fat/gas is ignored
SMOOTH_MM = 1.5  # Gaussian σ of the in-plane noise filter (smaller than the smallest lesion radius, 2.5 mm)
CORE_MM = 5.0  # the parenchyma level is taken ≥ this far inside the liver mask (no edge, no rim)
MIN_CORE_MM2 = 500.0  # a slice needs this much liver core (≈ 2.5 cm across) for its own level; else the volume's
NOISE_K = 2.0  # contrast margin ≥ this many robust SDs of the smoothed parenchyma (false-alarm control)
MIN_ROUNDNESS = 0.4  # minor/major axis ratio: an oval 2.5 : 1 at most; tubes (ducts, vessels) are longer
MIN_SOLIDITY = 0.7  # area / convex-hull area: lesions are convex blobs; leaks into neighbouring organs are not
VESSEL_MM = 8.0  # holes up to this diameter in a candidate are filled (vessels crossing a lesion)
RING_MM = 6.0  # the blob's surroundings: a ring this wide around it (≈ one lesion radius of a small lesion)
MIN_RING_PARENCHYMA = 0.5  # an intrahepatic lesion is embedded in liver: ≥ half its ring is parenchyma
PARENCHYMA_K = 1.0  # parenchyma = liver voxels within this many margins of the level (enhanced vessels are not)
SCORE_SPAN = 2.0  # contrast term reaches 1 at (1 + SCORE_SPAN) × margin below the parenchyma
GROW_MM = 4.0  # propagation along z: a lesion's outline moves at most this far between adjacent (≤ 2.5 mm) slices
PROPAGATE_LOW_PCT = 10.0  # propagation keeps voxels from this percentile of the lesion's own smoothed HU upwards
MIN_DEPTH_RATIO = 0.4  # z extent ≥ this × largest equivalent diameter (the in-plane 2.5 : 1 limit, along z)
MAX_DRIFT_RATIO = 1.0  # in-plane spread of a chain's centres ≤ this × its largest equivalent diameter (tubes drift)
UNKNOWN_SLICE_MM = (5.0, 1.0)  # slice spacing assumed when unknown: for the flatness bound (lenient: thick
# slices) and for the elongation bound (lenient: thin slices)
LEAK_AREA = 0.5  # a refused continuation ≥ this × the previous cross-section's area is a leak (the end not seen)


@dataclass(frozen=True)
class Detection:
    """One box on one slice (0-based index in slice order), pixel coordinates of the original slice.

    ``inside_fraction``: share of the candidate's own voxels (its 3D component) inside the liver mask
    (NaN for detectors without a pixel mask, e.g. the learned Faster R-CNN); ``envelope_fraction``: share of
    all its voxels (propagated cross-sections included) inside the liver closed with a disk of its own radius
    (:func:`lesiondx.ct_liver.edge.enveloped_fraction`, the claw rule for edge lesions).
    """

    slice: int
    box: Box
    score: float
    component: int = -1  # 3D candidate id (−1 for per-slice detectors)
    contrast_hu: float = float("nan")  # mean HU of the region minus the parenchyma level
    inside_fraction: float = float("nan")
    envelope_fraction: float = float("nan")


def disk(radius: float) -> np.ndarray:
    """Boolean disk structuring element of ``radius`` pixels (rounded, at least 1)."""
    r = max(1, int(round(radius)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r


def fill_small_holes(plane: np.ndarray, max_px: int) -> np.ndarray:
    """``plane`` with its enclosed holes of at most ``max_px`` pixels filled (larger holes stay open)."""
    holes = ndimage.binary_fill_holes(plane) & ~plane
    labels, n = ndimage.label(holes)
    if n == 0:
        return plane
    sizes = np.bincount(labels.ravel())
    small = sizes <= max_px
    small[0] = False
    return plane | small[labels]


def _normalised_smooth(hu: np.ndarray, weight: np.ndarray, sigma_px: float) -> np.ndarray:
    """In-plane Gaussian mean of ``hu`` over the voxels where ``weight`` is set (fat never bleeds in)."""
    w = weight.astype(np.float32)
    sig = (0, sigma_px, sigma_px)
    num = ndimage.gaussian_filter(hu * w, sig)
    den = ndimage.gaussian_filter(w, sig)
    return np.where(den > 0.2, num / np.maximum(den, 1e-3), 0.0).astype(np.float32)


def parenchyma_levels(smooth: np.ndarray, core: np.ndarray, mm: float) -> tuple[np.ndarray, float]:
    """Per-slice parenchyma level (median smoothed HU of the liver core; the volume median where a slice
    has < ``MIN_CORE_MM2`` of core) and the robust SD (1.4826 × MAD) of the smoothed core."""
    values = smooth[core]
    level = float(np.median(values))
    noise = float(1.4826 * np.median(np.abs(values - level)))
    per = np.full(smooth.shape[0], level, dtype=np.float32)
    min_px = MIN_CORE_MM2 / (mm * mm)
    for z in range(smooth.shape[0]):
        if core[z].sum() >= min_px:
            per[z] = np.median(smooth[z][core[z]])
    return per, noise


@dataclass(frozen=True)
class Blob:
    """One lesion-shaped cross-section on one slice of the working grid."""

    slice: int
    rows: slice
    cols: slice
    mask: np.ndarray  # cropped to (rows, cols)


def lesion_blobs(plane: np.ndarray, z: int, mm: float, min_mm: float, max_mm: float,
                 one_region: bool = False) -> list[Blob]:
    """Cross-sections of one candidate slice that look like a lesion: inscribed diameter ≥ ``min_mm``,
    equivalent diameter ≤ ``max_mm``, minor/major axis ≥ ``MIN_ROUNDNESS``, solidity ≥ ``MIN_SOLIDITY``
    (``one_region``: all of ``plane`` judged as one region)."""
    from skimage.measure import label, regionprops

    out = []
    for reg in regionprops(plane.astype(np.uint8) if one_region else label(plane, connectivity=2)):
        if reg.area * mm * mm < np.pi * (min_mm / 2) ** 2 or reg.equivalent_diameter_area * mm > max_mm:
            continue
        if reg.solidity < MIN_SOLIDITY or reg.axis_minor_length < MIN_ROUNDNESS * reg.axis_major_length:
            continue
        crop = reg.image
        if 2.0 * float(ndimage.distance_transform_edt(np.pad(crop, 1)).max()) * mm < min_mm:
            continue
        r0, c0, r1, c1 = reg.bbox
        out.append(Blob(z, slice(r0, r1), slice(c0, c1), crop))
    return out


def ring_parenchyma(blob: Blob, contrast: np.ndarray, parenchyma: np.ndarray, mm: float) -> tuple[float, float]:
    """Share of the ``RING_MM`` ring around ``blob`` that is liver parenchyma, and the parenchyma's
    median contrast there (the local background the blob is compared with; 0 when there is none)."""
    pad = int(np.ceil(RING_MM / mm)) + 1
    z, (h, w) = blob.slice, contrast.shape[1:]
    r0, c0 = max(0, blob.rows.start - pad), max(0, blob.cols.start - pad)
    r1, c1 = min(h, blob.rows.stop + pad), min(w, blob.cols.stop + pad)
    inner = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    inner[blob.rows.start - r0:blob.rows.stop - r0, blob.cols.start - c0:blob.cols.stop - c0] = blob.mask
    ring = ndimage.binary_dilation(inner, structure=disk(RING_MM / mm)) & ~inner
    par = parenchyma[z, r0:r1, c0:c1] & ring
    if not ring.any() or not par.any():
        return 0.0, 0.0
    return float(par.sum() / ring.sum()), float(np.median(contrast[z, r0:r1, c0:c1][par]))


def connected_ids(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """Union-find: one id per item ``0..n-1`` such that items linked by ``pairs`` share it."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(i)] = root(j)
    return [root(i) for i in range(n)]


def _overlap(a: Blob, b: Blob) -> bool:
    r0, r1 = max(a.rows.start, b.rows.start), min(a.rows.stop, b.rows.stop)
    c0, c1 = max(a.cols.start, b.cols.start), min(a.cols.stop, b.cols.stop)
    if r0 >= r1 or c0 >= c1:
        return False
    ma = a.mask[r0 - a.rows.start:r1 - a.rows.start, c0 - a.cols.start:c1 - a.cols.start]
    mb = b.mask[r0 - b.rows.start:r1 - b.rows.start, c0 - b.cols.start:c1 - b.cols.start]
    return bool((ma & mb).any())


def chain_ids(slices: Sequence[int], linked: Callable[[int, int], bool]) -> list[int]:
    """Chain id per item: items ``i`` and ``j`` on adjacent slices (``slices[j] == slices[i] + 1``) for which
    ``linked(i, j)`` holds share one, and so does everything chained to them."""
    by_z: dict[int, list[int]] = {}
    for i, z in enumerate(slices):
        by_z.setdefault(int(z), []).append(i)
    pairs = [(i, j) for z, here in by_z.items() for i in here for j in by_z.get(z + 1, []) if linked(i, j)]
    return connected_ids(len(slices), pairs)


def propagate(members: list[Blob], allowed: np.ndarray, search: np.ndarray, mm: float, min_mm: float,
              max_mm: float) -> tuple[list[Blob], bool]:
    """Cross-sections that continue a chain beyond its first and last slice: the ``allowed`` voxels
    (``(S, h, w)``: tissue in the lesion's own HU range) inside the previous cross-section dilated by
    ``GROW_MM`` and touching it, while they still pass the in-plane lesion rules (:func:`lesion_blobs`, as one
    region) and overlap the ``search`` region (the liver and its margin). Also returns whether an end was
    *truncated* (propagation stopped by those two conditions, not because the lesion's tissue ran out)."""
    out: list[Blob] = []
    truncated = False
    grow = disk(GROW_MM / mm)
    for end, step in ((min(members, key=lambda b: b.slice), -1), (max(members, key=lambda b: b.slice), 1)):
        prev = end
        z = prev.slice + step
        while 0 <= z < allowed.shape[0]:
            full = np.zeros(allowed.shape[1:], dtype=bool)
            full[prev.rows, prev.cols] = prev.mask
            here = allowed[z] & ndimage.binary_dilation(full, structure=grow)
            labels, n = ndimage.label(here)
            touching = np.unique(labels[full & here])
            plane = np.isin(labels, touching[touching > 0])
            if plane.sum() < np.pi * (min_mm / 2 / mm) ** 2:
                break  # the lesion's tissue ran out: its end was seen
            shaped = lesion_blobs(plane, z, mm, min_mm, max_mm, one_region=True)
            if not (plane & search[z]).any() or not shaped:
                # left the liver / a leak along muscle, bowel or vessels: the end was not seen unless shrinking
                truncated = truncated or plane.sum() >= LEAK_AREA * prev.mask.sum()
                break
            prev = shaped[0]
            out.append(prev)
            z += step
    return out, truncated


def _centre_and_diameter(b: Blob, mm: float) -> tuple[float, float, float]:
    rows, cols = np.nonzero(b.mask)
    return (b.rows.start + rows.mean()) * mm, (b.cols.start + cols.mean()) * mm, 2.0 * np.sqrt(rows.size / np.pi) * mm


def lesion_shaped_in_3d(members: Sequence[Blob], mm: float, slice_mm: float | None, n_slices: int,
                        truncated: bool = False) -> bool:
    """Depth, elongation and tube rules for one chain: z extent ≥ ``MIN_DEPTH_RATIO`` × its largest equivalent
    diameter (unless it touches the first or last slice or is ``truncated``: its ends were not seen) and
    ≤ that diameter / ``MIN_DEPTH_RATIO``, centre spread ≤ ``MAX_DRIFT_RATIO`` × that diameter.
    ``slice_mm`` ``None``: ``UNKNOWN_SLICE_MM`` (lenient for each bound)."""
    stats = np.array([_centre_and_diameter(b, mm) for b in members])
    diameter = float(stats[:, 2].max())
    zs = {b.slice for b in members}
    at_end = truncated or min(zs) == 0 or max(zs) == n_slices - 1
    flat_mm, long_mm = (slice_mm, slice_mm) if slice_mm else UNKNOWN_SLICE_MM
    if not at_end and len(zs) * flat_mm < MIN_DEPTH_RATIO * diameter:
        return False  # flat along z: a partial-volume cut of a surface, not a lesion
    if MIN_DEPTH_RATIO * len(zs) * long_mm > diameter:
        return False  # long along z: a vessel, duct or bowel loop running through the slices
    drift = float(max(np.ptp(stats[:, 0]), np.ptp(stats[:, 1])))
    return drift <= MAX_DRIFT_RATIO * diameter  # farther: a tube running obliquely (vessel, duct, fissure)


def _region(members: Sequence[Blob], shape: tuple[int, ...]) -> np.ndarray:
    """The cross-sections of one chain as a boolean volume of ``shape``."""
    region = np.zeros(shape, dtype=bool)
    for b in members:
        region[b.slice, b.rows, b.cols] |= b.mask
    return region


def slice_boxes(members: Sequence[Blob], mm: float) -> list[tuple[int, tuple[int, int, int, int]]]:
    """One box (r0, c0, r1, c1 on the working grid) per lesion part per slice: boxes of one chain on one
    slice ≤ ``VESSEL_MM`` apart are merged (a lesion split by a vessel or by noise is one part)."""
    gap = VESSEL_MM / mm
    out = []
    for z in sorted({b.slice for b in members}):
        boxes = [[b.rows.start, b.cols.start, b.rows.stop, b.cols.stop] for b in members if b.slice == z]
        merged = True
        while merged:
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, c = boxes[i], boxes[j]
                    if max(a[0], c[0]) - min(a[2], c[2]) <= gap and max(a[1], c[1]) - min(a[3], c[3]) <= gap:
                        boxes[i] = [min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]), max(a[3], c[3])]
                        del boxes[j]
                        merged = True
                        break
                if merged:
                    break
        out += [(z, tuple(b)) for b in boxes]
    return out


def detect_candidates(
    hu: np.ndarray, liver: np.ndarray, spacing_mm: float | None, *, min_contrast_hu: float = 15.0,
    min_mm: float = 5.0, max_mm: float = 150.0, search_margin_mm: float = 5.0, min_slices: int = 2,
    polarity: str = "hypo", slice_mm: float | None = None,
) -> list[Detection]:
    """Hypodense (``polarity="hypo"``) or hyperdense (``"hyper"``) lesion candidates in ``hu`` ``(S, H, W)``
    in and around the ``liver`` mask (same shape).

    ``min_contrast_hu``: smallest contrast margin below (above, for ``hyper``) the parenchyma level (the margin used
    is max(this, ``NOISE_K`` × the smoothed parenchyma's robust SD)); ``min_mm``/``max_mm``: lesion
    diameter limits; ``search_margin_mm``: how far outside the mask to look (edge lesions bulge out of
    liver masks; the liver filter then judges the candidate's own voxels); ``min_slices``: 3D
    consistency (relaxed to 1 for single-slice input). ``spacing_mm``: in-plane pixel size (0.75
    assumed when unknown); ``slice_mm``: slice spacing (``UNKNOWN_SLICE_MM`` when unknown). Kept chains
    are propagated along z (:func:`propagate`) and must pass :func:`lesion_shaped_in_3d`. Returns one
    :class:`Detection` per lesion part per slice (:func:`slice_boxes`).
    """
    if polarity not in ("hypo", "hyper"):
        raise ValueError(f"polarity must be 'hypo' or 'hyper', got {polarity!r}")
    sign = -1.0 if polarity == "hypo" else 1.0  # contrast is compared as sign × (region − liver level)
    hu = np.asarray(hu, dtype=np.float32)
    liver = np.asarray(liver, dtype=bool)
    if hu.shape != liver.shape or hu.ndim != 3:
        raise ValueError(f"hu {hu.shape} and liver {liver.shape} must be the same (S, H, W) volume")
    if not liver.any():
        return []
    full_mm = spacing_mm or 0.75
    factor = max(1, int(round(WORK_MM / full_mm)))
    mm = full_mm * factor
    small = ndimage.uniform_filter(hu, size=(1, factor, factor))[:, ::factor, ::factor] if factor > 1 else hu
    small_liver = liver[:, ::factor, ::factor]
    plane2d = lambda r: disk(r / mm)[None]  # noqa: E731 — in-plane structuring element of radius r mm
    fat = small <= FAT_HU
    tissue = ~ndimage.binary_dilation(fat, structure=plane2d(RIM_MM))  # no fat, no partial-volume rim
    search = ndimage.binary_dilation(small_liver, structure=plane2d(search_margin_mm)) & tissue
    smooth = _normalised_smooth(small, tissue, SMOOTH_MM / mm)
    core = ndimage.binary_erosion(small_liver, structure=plane2d(CORE_MM)) & tissue
    if core.sum() < 50:
        core = small_liver & tissue
    if not core.any():
        return []
    levels, noise = parenchyma_levels(smooth, core, mm)
    margin = max(min_contrast_hu, NOISE_K * noise)
    contrast = smooth - levels[:, None, None]
    cand = (sign * contrast > margin) & search & (small > FAT_HU)
    cand = ndimage.binary_opening(cand, structure=plane2d(min_mm / 4))  # bridges and lines < min_mm/2 go
    hole_px = int(np.pi * (VESSEL_MM / 2 / mm) ** 2)  # a vessel crossing a lesion is not a hole in it
    cand = np.stack([fill_small_holes(sl, hole_px) for sl in cand])
    parenchyma = small_liver & tissue & (np.abs(contrast) <= PARENCHYMA_K * margin)
    blobs = [b for z in range(cand.shape[0]) for b in lesion_blobs(cand[z], z, mm, min_mm, max_mm)]
    ids = chain_ids([b.slice for b in blobs], lambda i, j: _overlap(blobs[i], blobs[j]))  # one lesion per chain
    need = min(min_slices, hu.shape[0])
    out: list[Detection] = []
    for k in sorted(set(ids)):
        members = [b for b, i in zip(blobs, ids) if i == k]
        if len({b.slice for b in members}) < need:
            continue  # single-slice blip
        ring = [ring_parenchyma(b, contrast, parenchyma, mm) for b in members]
        if float(np.mean([r[0] for r in ring])) < MIN_RING_PARENCHYMA:
            continue  # surrounded by fat, lung, hilum or other organs: not embedded in the liver
        values = np.concatenate([contrast[b.slice, b.rows, b.cols][b.mask] - r[1] for b, r in zip(members, ring)])
        inside = float(np.concatenate([small_liver[b.slice, b.rows, b.cols][b.mask] for b in members]).mean())
        mean_contrast = float(values.mean())
        score = min(1.0, max(0.0, (sign * mean_contrast - margin) / (SCORE_SPAN * margin)))
        if hu.shape[0] > 1:
            own = sign * np.concatenate([contrast[b.slice, b.rows, b.cols][b.mask] for b in members])
            allowed = tissue & (sign * contrast > margin) & (sign * contrast <= np.percentile(own, 100 - PROPAGATE_LOW_PCT))
            allowed = ndimage.binary_opening(allowed, structure=plane2d(min_mm / 4))
            more, truncated = propagate(members, allowed, search, mm, min_mm, max_mm)
            members = members + more
            if not lesion_shaped_in_3d(members, mm, slice_mm, hu.shape[0], truncated):
                continue
        envelope = enveloped_fraction(_region(members, small_liver.shape), small_liver)
        for z, (r0, c0, r1, c1) in slice_boxes(members, mm):
            box = Box(c0 * factor, r0 * factor, min(hu.shape[2], c1 * factor), min(hu.shape[1], r1 * factor))
            out.append(Detection(z, box, round(score, 4), k, round(mean_contrast, 1), round(inside, 3), round(envelope, 3)))
    return out
