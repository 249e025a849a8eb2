"""us-liver input gate: a greyscale B-mode ultrasound frame (DICOM Modality US, or a raster the modality
probe calls ultrasound), not a CT slice; colour (Doppler, colour maps) is flagged; a frame smaller than every
AUL frame the model was fitted on (the smallest: 440 px wide, 341 px high) is flagged: downscaled or exported
teaching frames were not validated (300×225 px ones gave AUC ≈ 0.48, models/us-liver/MODEL_CARD.md); a blank
frame (black, or one flat grey level: no echoes) is refused, not answered "no focal lesion found"; a frame whose
scan sector does not narrow towards the top (rotated by 90°, or upside down: transducer at the bottom) is flagged
(left-right mirroring is a legitimate display choice and passes); caliper marks ('+' or 'x', white or coloured) inside
the sector are flagged (drawn marks change the call), and so is a split screen (two views side by side), colour inside
the sector (a Doppler or elastography box), a photo of the screen (no black background), a posterised frame (few grey
levels), data wider than 8 bits (stretched) and a line of text typed over the sector; a file tagged US whose
pixels the modality probe does not read as ultrasound is refused or flagged as a raster would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.io import MedicalImage
from lesiondx.io.series import spread_indices

from .checks import P_US_FLAG_US, P_US_REFUSE_US, modality_check, p_ultrasound_of, photometric_check
from .us_graphics import TEXT_GLYPHS, caliper_crosses, icon_outlines, text_run
from .verdict import Check, GateVerdict, combine

TASK = "us-liver"
MIN_COLS, MIN_ROWS = 440, 341  # px: the narrowest and the lowest AUL frame of the developer part
# blank frame: grey SD under 2 levels, or under 1 % of the pixels brighter than 10 (0..255); the AUL frames have
# SD >= 18.9 and >= 16.6 % of their pixels above 10 (a frame at a quarter of its gain: SD 8.4, 22 %)
BLANK_SD, ECHO_LEVEL, MIN_ECHO_SHARE = 2.0, 10.0, 0.01


def _grey_255(pixels: np.ndarray) -> np.ndarray:
    """Grey float32; data wider than 8 bits stretched min..max to 0..255."""
    grey = np.asarray(pixels, dtype=np.float32)
    low, high = float(grey.min()), float(grey.max())
    return (grey - low) * (255.0 / max(high - low, 1e-6)) if high > 255 or low < 0 else grey


def blank_reason(pixels: np.ndarray) -> str | None:
    """Why a grey frame holds no ultrasound image (black, or one flat level), or ``None``. Data wider than 8 bits
    is stretched min..max to 0..255 first."""
    grey = _grey_255(pixels)
    sd, share = float(grey.std()), float((grey > ECHO_LEVEL).mean())
    if sd < BLANK_SD or share < MIN_ECHO_SHARE:
        return (f"the frame is blank (grey SD {sd:.1f}, {share:.0%} of the pixels above {ECHO_LEVEL:.0f} of 255): "
                "no ultrasound image to assess")
    return None


# orientation: the echo area (grey > 4 after a 5-px mean on a half-size copy, opened, largest part, holes filled);
# ``narrowing`` = ln(width at 75 % of its height / width at 25 %), the same across its columns. Measured on the 562
# AUL frames (all seen in training) and their synthetic rotations (2026-12-06, every 3rd frame): upright frames'
# top/bottom width ratio <= 0.98 (median 0.54), upside-down copies >= 1.02 (5th percentile 1.35); the sideways
# narrowing exceeds the vertical one by > 0.4 in 0.5 % of upright frames and 85 % of rotated copies (97 % by > 0)
UPSIDE_DOWN_RATIO, SIDEWAYS_MARGIN = 1.15, 0.4


def echo_parts(grey: np.ndarray, n: int = 2) -> list[np.ndarray]:
    """The ``n`` largest echo areas on a half-size copy (every 2nd row and column), largest first: grey > 4 after a
    5-px mean, opened, holes filled; empty when nothing is above that level."""
    small = ndimage.uniform_filter(np.asarray(grey, np.float32)[::2, ::2], 5)
    mask = ndimage.binary_opening(small > 4.0, iterations=2)
    labels, count = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(1, count + 1)) if count else np.zeros(0)
    return [ndimage.binary_fill_holes(labels == 1 + int(i)) for i in np.argsort(sizes)[::-1][:n]]


def echo_area(grey: np.ndarray) -> np.ndarray | None:
    """The scan sector's echo area (the largest of :func:`echo_parts`, half size); ``None`` when there is none."""
    parts = echo_parts(grey, 1)
    return parts[0] if parts else None


@dataclass(frozen=True)
class EchoFrame:
    """One frame as the sector checks read it, measured once: grey 0..255, its two largest echo areas and its
    chroma (colour sources; ``None`` for grey ones)."""

    grey: np.ndarray
    parts: tuple[np.ndarray, ...]
    chroma: np.ndarray | None = None

    @classmethod
    def of(cls, image: MedicalImage, index: int = 0) -> EchoFrame:
        """Frame ``index`` of a cine (ignored for one frame); data wider than 8 bits stretched min..max frame by
        frame, as predict scores it (:func:`lesiondx.us_liver.inputs.to_grey_255`)."""
        grey = _grey_255(image.pixels if image.pixels.ndim == 2 else image.pixels[index])
        chroma = image.chroma if image.chroma is None or image.chroma.ndim == 2 else image.chroma[index]
        chroma = chroma if chroma is not None and chroma.shape == grey.shape else None  # pixels replaced: not theirs
        return cls(grey, tuple(echo_parts(grey, 2)), chroma)

    @property
    def area(self) -> np.ndarray | None:
        return self.parts[0] if self.parts else None


def sector_narrowing(grey: np.ndarray, area: np.ndarray | None = None) -> tuple[float, float] | None:
    """``(vertical, sideways)`` narrowing of the echo area (natural log of width ratios): vertical > 0 when it is
    narrower at the top than at the bottom (transducer at the top); sideways > 0 when narrower at the left than at
    the right (< 0: at the right). ``None`` when there is no echo area to measure. ``area``: the echo area when
    already measured."""
    mask = area if area is not None else echo_area(grey)
    if mask is None:
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    sub = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = sub.shape
    if h < 8 or w < 8:
        return None
    widths, heights = sub.sum(1), sub.sum(0)
    vertical = float(np.log(max(widths[int(0.75 * h)], 1) / max(widths[int(0.25 * h)], 1)))
    sideways = float(np.log(max(heights[int(0.75 * w)], 1) / max(heights[int(0.25 * w)], 1)))
    return vertical, sideways


def orientation_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag a frame whose scan sector does not narrow towards the top: upside down (top wider than the bottom by
    more than :data:`UPSIDE_DOWN_RATIO`) or rotated (the sector narrows more sideways than downwards, by
    :data:`SIDEWAYS_MARGIN`, or at all on a portrait frame). A linear-probe rectangle narrows nowhere and passes.
    The reason names the side the sector narrows towards (where the transducer is)."""
    frame = frame or EchoFrame.of(image)
    grey = frame.grey
    measured = sector_narrowing(grey, frame.area)
    if measured is None:
        return Check("orientation", "ok", None)
    vertical, sideways = measured
    value = {"top_to_bottom_width_ratio": round(float(np.exp(-vertical)), 3), "vertical_narrowing": round(vertical, 3),
             "sideways_narrowing": round(sideways, 3)}
    portrait = grey.shape[-2] > grey.shape[-1]
    upside_down = np.exp(-vertical) > UPSIDE_DOWN_RATIO
    rotated = abs(sideways) - vertical > SIDEWAYS_MARGIN or (portrait and abs(sideways) > vertical)
    if not (upside_down or rotated):
        return Check("orientation", "ok", value)
    side = max((-vertical, "bottom"), (sideways, "left"), (-sideways, "right"))[1]
    looks = "upside down" if side == "bottom" else "rotated by 90°"
    return Check("orientation", "flagged", value,
                 f"the scan sector narrows towards the {side} of the frame, not the top: the frame looks {looks}; the "
                 "model reads B-mode frames with the transducer at the top (left-right mirroring is fine): rotate it back")


def marks_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag caliper crosses drawn inside the scan sector: measurement marks on or beside a lesion change the call
    (two synthetic crosses at the lesion's ends changed it on 12 % of AUL frames, 2026-12-06)."""
    frame = frame or EchoFrame.of(image)
    crosses = caliper_crosses(frame.grey, frame.area, frame.chroma)
    if not crosses:
        return Check("marks", "ok", {"caliper_crosses": []})
    where = ", ".join(f"({x}, {y})" for x, y in crosses[:4]) + (" …" if len(crosses) > 4 else "")
    return Check("marks", "flagged", {"caliper_crosses": [list(c) for c in crosses]},
                 f"{len(crosses)} caliper / measurement cross(es) inside the scan sector at x, y = {where} px: drawn "
                 "marks can change the answer; send the frame exported without measurements")


# dual view: a second echo area at least half the size of the largest, beside it (their column ranges overlap by
# under 10 % of the narrower); 2026-12-06 on the 562 AUL frames (all seen in training): none flagged (the second
# largest echo area at most 0.17 of the largest); 541 of 562 flagged when put beside their own mirror image
DUAL_SHARE, DUAL_OVERLAP = 0.5, 0.1


def layout_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag a split-screen frame (two views side by side: dual B-mode, or B-mode beside an elastography or
    contrast view): the model was trained on single views, and two AUL frames put side by side changed the call on
    44 % of them (synthetic, 2026-12-06)."""
    parts = (frame or EchoFrame.of(image)).parts
    if len(parts) < 2:
        return Check("layout", "ok", {"views": len(parts)})
    share = float(parts[1].sum() / max(parts[0].sum(), 1))
    cols = [np.flatnonzero(p.any(0)) for p in parts]
    overlap = max(0, min(cols[0][-1], cols[1][-1]) - max(cols[0][0], cols[1][0]) + 1)
    narrower = min(len(c) for c in cols)
    value = {"second_view_share": round(share, 3), "column_overlap": round(overlap / max(narrower, 1), 3)}
    if share >= DUAL_SHARE and overlap < DUAL_OVERLAP * narrower:
        return Check("layout", "flagged", value, "two ultrasound views side by side (split screen): the model reads one "
                     "view a frame; crop the view with the lesion, or give its ROI")
    return Check("layout", "ok", value)


# screen and rendering checks, measured 2026-12-06 on the 562 AUL frames (all seen in training), as read:
# - colour inside the scan sector: pixels of chroma >= 60 are at most 0.19 % of the echo area (p99 0.12 %: scanner
#   labels at its edge); an ALTERED frame with a colour Doppler box over the lesion (flow in 0.37 % of the frame): 0.78 %
# - black background: smoothed grey <= 4 outside both echo areas covers >= 35.6 % of every frame (median 57.5 %); a
#   phone photo of the screen (lifted blacks, glare, moiré; ALTERED): 0 %
# - grey levels inside the echo area: >= 111 distinct (p1 174); the same frame as a 16-colour palette PNG: 16
SECTOR_COLOUR_CHROMA, SECTOR_COLOUR_SHARE = 60, 0.003
MIN_BLACK_SHARE, MIN_GREY_LEVELS = 0.15, 64


def _full_size(area: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A half-size echo area (:func:`echo_parts`) at the frame's size."""
    big = np.repeat(np.repeat(area, 2, 0), 2, 1)[: shape[0], : shape[1]]
    return np.pad(big, ((0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])))


def sector_colour_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag colour inside the scan sector (a colour Doppler or elastography box, coloured graphics) above
    :data:`SECTOR_COLOUR_SHARE` of the echo area: the whole-frame colour share (photometric check, 2 %) misses a
    Doppler box over a small lesion."""
    frame = frame or EchoFrame.of(image)
    if frame.chroma is None or frame.area is None:
        return Check("sector_colour", "ok", None)
    area = _full_size(frame.area, frame.grey.shape)
    share = float((frame.chroma[area] >= SECTOR_COLOUR_CHROMA).mean()) if area.any() else 0.0
    value = {"coloured_share_of_sector": round(share, 4)}
    if share > SECTOR_COLOUR_SHARE:
        return Check("sector_colour", "flagged", value, f"{share:.1%} of the scan sector is coloured (a colour Doppler "
                     "or elastography box, or coloured graphics over the image): the model was validated on greyscale "
                     "B-mode; send the frame without the colour box")
    return Check("sector_colour", "ok", value)


def screen_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag a frame with little black background around the scan sector (under :data:`MIN_BLACK_SHARE` of it: a
    photo of the scanner's screen, whose blacks are lifted by room light, or a frame cropped to the sector) or with
    fewer than :data:`MIN_GREY_LEVELS` grey levels inside the sector (posterised: a palette image of few colours);
    and data stored with more than 8 bits, which is stretched min..max to 0..255 grey."""
    frame = frame or EchoFrame.of(image)
    problems: list[str] = []
    value: dict[str, object] = {"max_stored_value": float(np.max(image.pixels))}
    if value["max_stored_value"] > 255:
        problems.append(f"pixels stored with more than 8 bits (largest value {value['max_stored_value']:.0f}) were "
                        "stretched min..max to 0..255 grey; the model was validated on 8-bit frames: check the contrast")
    if frame.area is not None:
        anywhere = np.logical_or.reduce(frame.parts)
        small = frame.grey[::2, ::2][: anywhere.shape[0], : anywhere.shape[1]]
        black = float(((ndimage.uniform_filter(small, 5) <= 4.0) & ~anywhere).mean())
        levels = int(np.unique(np.rint(frame.grey[_full_size(frame.area, frame.grey.shape)])).size)
        value |= {"black_background_share": round(black, 3), "grey_levels_in_sector": levels}
        if black < MIN_BLACK_SHARE:
            problems.append(f"only {black:.0%} of the frame is black background around the scan sector (every frame "
                            f"the model was trained on has at least 35 %): a photo of the screen (room light, glare, "
                            "moiré) or a frame cropped to the sector; send the frame as the scanner exports it")
        if levels < MIN_GREY_LEVELS:
            problems.append(f"only {levels} grey levels inside the scan sector (posterised: a palette image of few "
                            "colours, or a heavily compressed copy); send the original frame")
    return Check("screen", "flagged" if problems else "ok", value, "; ".join(problems))


def text_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag a line of text inside the scan sector (annotations, measurement labels typed over the image): the model
    reads every pixel of the sector as echoes."""
    frame = frame or EchoFrame.of(image)
    if frame.area is None:
        return Check("text", "ok", None)
    run = text_run(frame.grey, _full_size(frame.area, frame.grey.shape), frame.chroma)
    value = {"longest_text_row_glyphs": run}
    if run >= TEXT_GLYPHS:
        return Check("text", "flagged", value, f"a line of text ({run} characters) is drawn inside the scan sector: "
                     "annotations over the image can change the answer; send the frame exported without annotations")
    return Check("text", "ok", value)


def icon_check(image: MedicalImage, frame: EchoFrame | None = None) -> Check:
    """Flag a body-marker icon (a closed drawn outline, :func:`icon_outlines`) inside the scan sector: scanners put
    it in a corner, but moved over the image it reads as echoes (one over the lesion changed the call on 3 of 30
    ALTERED AUL frames, 2026-12-06)."""
    frame = frame or EchoFrame.of(image)
    if frame.area is None:
        return Check("icon", "ok", None)
    icons = icon_outlines(frame.grey, _full_size(frame.area, frame.grey.shape), frame.chroma)
    value = {"icon_boxes": [list(b) for b in icons]}
    if icons:
        x, y, w, h = icons[0]
        return Check("icon", "flagged", value, f"a drawn outline ({w}×{h} px at x, y = {x}, {y}; a body-marker icon "
                     "or pictogram) lies inside the scan sector: graphics over the image can change the answer; move "
                     "the body marker off the image or send the frame without it")
    return Check("icon", "ok", value)


SECTOR_CHECKS = (orientation_check, marks_check, layout_check, sector_colour_check, screen_check, text_check,
                 icon_check)
"""The checks made on each frame's scan sector (one :class:`EchoFrame` measured per frame, shared by all)."""
# a cine: every frame is scored, so every frame is checked (calipers, Doppler, text are often switched on mid-clip),
# up to this many; a longer clip: this many evenly spaced, its first and last included (~0.12 s a frame, 2026-12-06)
MAX_CLIP_FRAMES = 64


def clip_frames(n_frames: int, most: int = MAX_CLIP_FRAMES) -> list[int]:
    """The 0-based frames of an ``n_frames`` cine the sector checks look at: all, or ``most`` evenly spaced."""
    return spread_indices(n_frames, most)


def _frame_list(frames: list[int]) -> str:
    """'3, 4, 7' (0-based), with '…' after 8."""
    return ", ".join(map(str, frames[:8])) + (" …" if len(frames) > 8 else "")


def clip_checks(image: MedicalImage) -> list[Check]:
    """:data:`SECTOR_CHECKS` on the frames of a cine (:func:`clip_frames`): a check is flagged when it flags any
    frame; its value: ``frames_flagged``, ``frames_checked``, ``of_frames`` and the ``frame_value`` of ``frame``
    (the first frame flagged, else 0); its reason names the frames (0-based, as ``--frame`` counts them)."""
    indices = clip_frames(image.n_slices)
    per_frame: list[list[Check]] = []
    for i in indices:
        frame = EchoFrame.of(image, i)
        per_frame.append([check(image.slice(i), frame) for check in SECTOR_CHECKS])
    spread = (f"{len(indices)} of {image.n_slices} frames checked, evenly spaced"
              if len(indices) < image.n_slices else f"all {image.n_slices} frames checked")
    merged: list[Check] = []
    for column in zip(*per_frame):
        flagged = [i for i, c in zip(indices, column) if c.status != "ok"]
        shown = column[indices.index(flagged[0])] if flagged else column[0]
        value = {"frames_flagged": flagged, "frames_checked": len(indices), "of_frames": image.n_slices,
                 "frame": flagged[0] if flagged else 0, "frame_value": shown.value}
        reason = (f"cine frame(s) {_frame_list(flagged)} ({len(flagged)} of {image.n_slices}; {spread}): "
                  f"{shown.reason}") if flagged else ""
        merged.append(Check(shown.name, shown.status if flagged else "ok", value, reason))
    return merged


def content_check(image: MedicalImage) -> Check:
    reason = blank_reason(image.pixels)
    return Check("content", "refused", None, reason) if reason else Check("content", "ok", None)


def size_check(image: MedicalImage) -> Check:
    rows, cols = image.pixels.shape[-2:]
    value = {"rows": int(rows), "cols": int(cols)}
    if cols < MIN_COLS or rows < MIN_ROWS:
        return Check("size", "flagged", value,
                     f"{cols}×{rows} px is smaller than every frame the model was trained on (at least "
                     f"{MIN_COLS}×{MIN_ROWS} px); downscaled or exported frames were not validated")
    return Check("size", "ok", value)


def tagged_content_check(image: MedicalImage) -> Check:
    """A file whose DICOM Modality says US is judged by its pixels too (the raster modality probe, with the raster
    thresholds): a CT slice or an X-ray-like image in a file tagged US (a mis-tagged secondary capture) was scored
    as ultrasound, and the out-of-distribution score does not catch it (2026-12-06: three abdomen-window Lung-PET-CT-Dx
    slices wrapped in US DICOM scored 6.7-11.4 without an ROI and 8.2-8.8 with a central one, threshold 10.1:
    1 of 6 flagged; all refused here at P(ultrasound) = 0.00)."""
    p_us = round(p_ultrasound_of(image), 4)
    value = {"dicom_modality": "US", "inferred_p_ultrasound": p_us}
    if p_us < P_US_REFUSE_US:
        return Check("content_modality", "refused", value, f"the file is tagged US but its pixels do not look like a "
                     f"B-mode ultrasound frame (P(ultrasound) = {p_us:.2f}; they read as a CT slice or other image)")
    if p_us < P_US_FLAG_US:
        return Check("content_modality", "flagged", value, f"the file is tagged US but its pixels are not clearly a "
                     f"B-mode ultrasound frame (P(ultrasound) = {p_us:.2f})")
    return Check("content_modality", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The us-liver verdict for one frame read by :mod:`lesiondx.io`."""
    modality = modality_check(image, "US")
    if modality.status == "refused":
        return combine(TASK, [modality])
    content = content_check(image)
    checks = [modality, photometric_check(image, greyscale_model=True), size_check(image), content]
    if content.status == "ok":  # a blank frame has no sector, no marks and nothing to probe
        checks += clip_checks(image) if image.is_volume else [check(image, EchoFrame.of(image))
                                                              for check in SECTOR_CHECKS]
        if (image.modality or "").upper() == "US":
            checks.append(tagged_content_check(image))
    return combine(TASK, checks)
