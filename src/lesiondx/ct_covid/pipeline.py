"""One series end to end: window → lung field → lung crop → UNet++ → lesion boxes → patient rule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesiondx.data import Box, boxes_from_mask, quadrant
from lesiondx.io import display_grey, grey_to_hu
from lesiondx.overlay import save_overlay

from .config import CovidConfig
from .locations import LungFrame, location_text, lung_frame
from .lung import crop_box, lung_field
from .model import LoadedModel, predict_probs
from .rule import PatientDecision, RuleSettings, lesion_parts, patient_rule


@dataclass(frozen=True)
class SliceResult:
    """Findings on one slice; boxes are in the original slice's pixel coordinates. ``quadrants`` are image
    quadrants (image-coordinate metadata, used by the rule); ``locations`` are in patient terms."""

    position: int
    score: float
    boxes: tuple[Box, ...]
    box_scores: tuple[float, ...]
    quadrants: tuple[str, ...]
    locations: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        locations = self.locations or (None,) * len(self.boxes)
        return {"slice": self.position, "probability": self.score,
                "boxes": [{"box": b.as_list(), "location": loc, "image_quadrant": q, "score": s}
                          for b, q, loc, s in zip(self.boxes, self.quadrants, locations, self.box_scores)]}


@dataclass(frozen=True)
class SeriesResult:
    """A series' slice findings, patient decision, crop box, the lesion size floor used (pixels of the
    probability map) and per-stage seconds."""

    slices: tuple[SliceResult, ...]
    patient: PatientDecision
    crop: Box
    shape: tuple[int, int]
    probs: np.ndarray = field(repr=False)
    min_lesion_area_px: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    frame: LungFrame | None = None  # reference of the patient-term locations

    @property
    def location(self) -> str | None:
        """Patient-term location of the longest same-quadrant run (``None`` without one)."""
        run, quad = self.patient.run, self.patient.quadrant
        if run is None or self.frame is None:
            return None
        picked = [(i, s) for i, s in enumerate(self.slices) if run[0] <= s.position <= run[1]]
        boxes = [(i, b) for i, s in picked for b, q in zip(s.boxes, s.quadrants) if q == quad]
        return location_text([self.frame.side(b.center[1], b.center[0]) for _, b in boxes],
                             [self.frame.zone(i) for i, _ in picked])

    def heatmap(self, i: int) -> np.ndarray:
        """Lesion probability of slice ``i`` at the original slice size (0 outside the lung crop)."""
        full = np.zeros(self.shape, dtype=np.float32)
        c = self.crop
        full[c.y1 : c.y2, c.x1 : c.x2] = resize_stack(self.probs[i : i + 1], (c.height, c.width))[0]
        return full


def _aa_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` resampling matrix of antialiased bilinear interpolation (triangle filter widened by the
    scale when shrinking, half-pixel centres): the algorithm of PIL and ``torch.nn.functional.interpolate(...,
    mode="bilinear", antialias=True, align_corners=False)``, written in NumPy so inference needs no torch."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = scale * (np.arange(n_out) + 0.5)
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    taps = np.arange(n_in)[None, :]
    weights = np.clip(1.0 - np.abs((taps - centre[:, None] + 0.5) / support), 0.0, None)
    weights *= (taps >= lo[:, None]) & (taps < hi[:, None])
    return weights / weights.sum(1, keepdims=True)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel as torch's ``mode="nearest"``: ``floor(i · n_in / n_out)`` in float32."""
    scale = np.float32(n_in / n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


def resize_stack(stack: np.ndarray, shape: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize ``(N, H, W)`` to ``(N, *shape)`` (bilinear with antialiasing, or nearest), float32."""
    x = np.asarray(stack, dtype=np.float32)
    if nearest:
        return np.ascontiguousarray(x[:, _nearest_index(x.shape[1], shape[0])][:, :, _nearest_index(x.shape[2], shape[1])])
    rows = _aa_weights(x.shape[1], shape[0]).astype(np.float32)
    cols = _aa_weights(x.shape[2], shape[1]).astype(np.float32)
    tall = (rows @ x).reshape(-1, x.shape[2])  # the column pass as one matrix product: same sums as slice by slice
    return np.ascontiguousarray((tall @ cols.T).reshape(len(x), *shape), dtype=np.float32)


def robust_max(values: np.ndarray, n: int) -> float:
    """The ``n``-th largest value (0.0 when there are fewer): the probability reached by ≥ n pixels."""
    flat = np.ravel(values)
    if flat.size < n:
        return 0.0
    # lesion maps are mostly 0 outside the lung: when n values are above 0 (or NaN), select among those only
    above = flat[~(flat <= 0)] if n >= 1 else flat
    pool = above if above.size >= n else flat
    return float(np.partition(pool, pool.size - n)[pool.size - n])


def map_midlines(shape: tuple[int, int], crop: Box, size: int) -> tuple[float, float]:
    """The original slice's mid-lines (row, col) in pixels of the ``size``² probability map of ``crop``:
    quadrants are halves of the original slice, not of the lung crop."""
    return (shape[0] / 2 - crop.y1) * size / crop.height, (shape[1] / 2 - crop.x1) * size / crop.width


def lesion_min_area_px(config: CovidConfig, crop: Box, spacing: tuple[float, float] | None) -> float:
    """Smallest lesion cross-section in pixels of the model's probability map: a disk of
    ``min_lesion_diameter_mm`` when the pixel spacing (row, col mm) is known, never below ``min_area``."""
    if spacing is None or config.min_lesion_diameter_mm <= 0:
        return float(config.min_area)
    size = config.input_size
    pixel_mm2 = (crop.height * spacing[0] / size) * (crop.width * spacing[1] / size)
    return max(float(config.min_area), np.pi / 4 * config.min_lesion_diameter_mm**2 / pixel_mm2)


def _slice_findings(prob: np.ndarray, position: int, crop: Box, shape: tuple[int, int], config: CovidConfig,
                    min_area_px: float, frame: LungFrame | None = None, index: int = 0,
                    lesion: np.ndarray | None = None) -> SliceResult:
    """Boxes of the slice's lesions: ``lesion`` (the rule's kept lesions) or ``prob ≥ prob_threshold``."""
    size = prob.shape[0]
    sx, sy = crop.width / size, crop.height / size
    boxes, scores, quads = [], [], []
    lesion = prob >= config.prob_threshold if lesion is None else lesion
    for b in boxes_from_mask(lesion, min_area=int(np.ceil(min_area_px))) if lesion.any() else []:
        box = Box(crop.x1 + int(b.x1 * sx), crop.y1 + int(b.y1 * sy),
                  crop.x1 + int(np.ceil(b.x2 * sx)), crop.y1 + int(np.ceil(b.y2 * sy)))
        boxes.append(box)
        scores.append(float(prob[b.y1 : b.y2, b.x1 : b.x2].max()))
        quads.append(quadrant(box, shape))
    locations = tuple(frame.box_location(b, index) for b in boxes) if frame is not None else ()
    return SliceResult(position, robust_max(prob, config.min_area), tuple(boxes), tuple(scores), tuple(quads),
                       locations)


@dataclass(frozen=True)
class ModelInputs:
    """A series prepared for the segmenter: ``grey`` model inputs and ``lung`` fields ``(S, size, size)`` of the
    lung crop, the crop in original pixels, the lung fields at ``size``² of the whole slice and stage seconds."""

    grey: np.ndarray
    lung: np.ndarray
    crop: Box
    shape: tuple[int, int]
    lungs_full: np.ndarray
    timings: dict[str, float]


def prepare_inputs(pixels: np.ndarray, config: CovidConfig, *, is_hu: bool = True,
                   remove_border_air: bool | None = None) -> ModelInputs:
    """Window, lung field per slice, crop of the series to the union of its lung fields, resize to the model."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or pixels.shape[0] == 0:
        raise ValueError(f"expected slices (S, H, W), got shape {pixels.shape}")
    shape = (int(pixels.shape[1]), int(pixels.shape[2]))
    size = config.input_size
    border = is_hu if remove_border_air is None else remove_border_air
    timings: dict[str, float] = {}

    t = time.perf_counter()
    grey = display_grey(pixels, is_hu, config.window)  # as the model saw in training
    small = resize_stack(grey, (size, size))
    lungs = np.stack([lung_field(s, config.lung_threshold_grey, min_area=config.lung_min_area,
                                 closing=config.lung_closing, remove_border_air=border) for s in small])
    timings["lung_field_s"] = time.perf_counter() - t

    t = time.perf_counter()
    full = Box(0, 0, shape[1], shape[0])
    box = crop_box(lungs, config.crop_margin) if config.crop_to_lungs else None
    if box is None:
        crop, small_box = full, Box(0, 0, size, size)
    else:
        small_box = box
        crop = Box(int(box.x1 * shape[1] / size), int(box.y1 * shape[0] / size),
                   int(np.ceil(box.x2 * shape[1] / size)), int(np.ceil(box.y2 * shape[0] / size)))
    inputs = resize_stack(grey[:, crop.y1 : crop.y2, crop.x1 : crop.x2], (size, size))
    lung_in = resize_stack(lungs[:, small_box.y1 : small_box.y2, small_box.x1 : small_box.x2].astype(np.float32),
                            (size, size), nearest=True) > 0.5
    timings["crop_resize_s"] = time.perf_counter() - t
    return ModelInputs(inputs, lung_in, crop, shape, lungs, timings)


def analyse_series(
    pixels: np.ndarray,
    model: LoadedModel,
    *,
    is_hu: bool = True,
    positions: Sequence[int] | None = None,
    remove_border_air: bool | None = None,
    spacing: Sequence[float] | None = None,
    fast: bool = True,
    orientation: Sequence[float] | None = None,
    slice_positions_mm: Sequence[float] | None = None,
) -> SeriesResult:
    """Analyse slices ``(S, H, W)`` (HU, or 8-bit grey when ``is_hu`` is False) in order.

    Per-slice score = the lesion probability reached by at least ``min_area`` lung-field pixels at
    model resolution (a robust maximum). With a candidate filter (``model.candidate_filter``) the boxes and
    the patient rule count only the lesion candidates it keeps. ``remove_border_air`` defaults to ``is_hu`` (whole-body
    DICOM slices); pass False for slices already cropped to the chest. ``spacing`` (mm per pixel,
    ``(row, col)``, or ``(slice, row, col)``) turns ``min_lesion_diameter_mm`` into pixels; without it
    the lesion size floor is ``min_area`` pixels at model resolution. ``orientation`` (DICOM
    ImageOrientationPatient) and ``slice_positions_mm`` (along the head-pointing normal) place findings in
    patient terms (see :mod:`.locations`); without them a supine head-first axial scan ordered superior →
    inferior is assumed.
    """
    config = model.config
    size = config.input_size
    prepared = prepare_inputs(pixels, config, is_hu=is_hu, remove_border_air=remove_border_air)
    inputs, lung_in, crop, shape, lungs = (prepared.grey, prepared.lung, prepared.crop, prepared.shape,
                                           prepared.lungs_full)
    timings = dict(prepared.timings)

    t = time.perf_counter()
    probs = predict_probs(model.module, inputs, batch=config.infer_batch, fast=fast) * lung_in
    timings["model_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pos = list(range(len(probs))) if positions is None else [int(p) for p in positions]
    in_plane = (float(spacing[-2]), float(spacing[-1])) if spacing is not None and len(spacing) >= 2 else None
    min_area_px = lesion_min_area_px(config, crop, in_plane)
    frame = lung_frame(lungs, shape, orientation=orientation, positions=slice_positions_mm, spacing=in_plane)
    midlines = map_midlines(shape, crop, size)
    keep = (model.candidate_filter.keeper(grey_to_hu(inputs, (config.window_center, config.window_width)), probs)
            if model.candidate_filter is not None else None)
    settings = RuleSettings(k=config.k_consecutive, threshold=config.prob_threshold, min_area_px=min_area_px,
                            midlines=midlines, keep=keep)
    parts = lesion_parts(probs >= settings.threshold, settings)  # once: the boxes and the rule's decision share them
    lesions = parts[2][parts[0]]  # the kept lesions (rule.kept_lesions)
    slices = tuple(_slice_findings(p, q, crop, shape, config, min_area_px, frame, i, lesions[i])
                   for i, (p, q) in enumerate(zip(probs, pos)))
    patient = patient_rule(probs, settings, pos, score_steps=8 if keep is not None else 12,  # filter: costlier steps
                           parts=parts)
    timings["boxes_rule_s"] = time.perf_counter() - t
    return SeriesResult(slices, patient, crop, shape, probs.astype(np.float32), min_area_px, timings, frame)


def save_positive_overlays(result: SeriesResult, grey: np.ndarray, folder: Path, prefix: str = "slice") -> list[str]:
    """One PNG per slice with a lesion box (grey 0..255 slices in the same order); their paths."""
    paths = []
    for i, s in enumerate(result.slices):
        if not s.boxes:
            continue
        path = save_overlay(folder / f"{prefix}_{s.position:04d}.png", grey[i], heatmap=result.heatmap(i),
                            boxes=list(s.boxes), box_labels=[f"{loc} {p:.2f}" for loc, p in
                                                             zip(s.locations or s.quadrants, s.box_scores)],
                            caption=f"slice {s.position}: lesion probability {s.score:.2f}")
        paths.append(str(path))
    return paths
