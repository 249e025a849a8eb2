"""Graphics a scanner or a person draws over an ultrasound frame, found in its pixels (grey 0..255, chroma of
:attr:`lesiondx.io.MedicalImage.chroma`): caliper crosses, lines of text and body-marker icons. Used by the us-liver
gate (:mod:`lesiondx.gate.us_liver`), which holds the checks and their reasons."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .features import thin_bright_strokes

# caliper marks: '+' or 'x' crosses drawn in saturated white (grey >= 245 of 255) or in vivid colour (chroma, max − min
# of R, G, B, >= 80 grey levels: yellow, green, cyan calipers; colour frames only) with arms of at least 5 px ('+') or
# 4 px along each axis ('x', 5.7 px long) in all four directions, strokes at most 3 px thick, a marked part under 60 px
# across, thin (at most a quarter of the pixels 3-4 px beside the arms marked; white marks: on darker tissue, their
# median below 185), inside the echo area. 2026-12-06 on AUL frames (all seen in training): no frame flagged of the 562
# as they are (also none before, with white '+' marks only); of 122 ALTERED lesion frames (every 4th) with two drawn
# marks ('+'/'x', white/yellow/green/cyan, arms 5-10 px, strokes 1-2 px, on the lesion's ends or beside it, dotted line
# and "D1 2.31 cm" label) 122 flagged as PNG and 121 as JPEG (quality 90), against 21 and 21 with the white-'+' rule
MARK_LEVEL, MARK_THICK, MARK_EXTENT, MARK_SIDE_GAP, MARK_SIDE_MARKED = 245.0, 3, 60, 60.0, 0.25
MARK_CHROMA, MARK_COLOUR_GREY = 30.0, 100.0
# each shape: its two strokes' (row, col) steps, the arm reach (steps), and the distances (steps) beside an arm sampled
CROSS_SHAPES = {"+": (((0, 1), (1, 0)), 5, (3, 4)), "x": (((1, 1), (1, -1)), 4, (2, 3))}


def graphic_mask(grey: np.ndarray, chroma: np.ndarray | None = None) -> np.ndarray:
    """Pixels a scanner draws rather than echoes: saturated white (grey >= :data:`MARK_LEVEL`), or bright colour
    (``chroma`` >= :data:`MARK_CHROMA` and grey >= :data:`MARK_COLOUR_GREY`) when the frame's chroma is known."""
    mask = np.asarray(grey) >= MARK_LEVEL
    if chroma is not None and chroma.shape == mask.shape:
        mask |= (chroma >= MARK_CHROMA) & (np.asarray(grey) >= MARK_COLOUR_GREY)
    return mask


def _stroke(step: tuple[int, int], length: int, width: int = 1) -> np.ndarray:
    """A structuring element: a line of ``length`` steps along (row, col) ``step``, ``width`` px wide across rows'
    direction for diagonals (across the line for axis-parallel strokes)."""
    if step == (0, 1):
        return np.ones((width, length), bool)
    if step == (1, 0):
        return np.ones((length, width), bool)
    element = np.zeros((length, length + width - 1), bool)
    for i in range(length):
        element[i, i : i + width] = True
    return element if step == (1, 1) else element[:, ::-1]


def _shift_into(out: np.ndarray, src: np.ndarray, dy: int, dx: int, combine) -> None:
    """``out[y, x] = combine(out[y, x], src[y + dy, x + dx])`` in place, ``src`` read as False outside the frame."""
    h, w = src.shape
    target = out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    combine(target, src[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)], out=target)
    if combine is np.logical_and:  # pixels whose source lies outside the frame
        if dy:
            out[slice(h - dy, None) if dy > 0 else slice(None, -dy)] = False
        if dx:
            out[:, slice(w - dx, None) if dx > 0 else slice(None, -dx)] = False


def _opening(mask: np.ndarray, element: np.ndarray) -> np.ndarray:
    """``ndimage.binary_opening(mask, element)`` for an odd-sized ``element``, as shifted in-place ANDs and ORs
    (the same pixels, several times faster for these sparse line elements)."""
    r0, r1 = element.shape[0] // 2, element.shape[1] // 2
    offsets = [(int(i) - r0, int(j) - r1) for i, j in zip(*np.nonzero(element))]
    eroded = np.ones_like(mask, dtype=bool)
    for dy, dx in offsets:
        _shift_into(eroded, mask, dy, dx, np.logical_and)
    opened = np.zeros_like(eroded)
    for dy, dx in offsets:
        _shift_into(opened, eroded, -dy, -dx, np.logical_or)
    return opened


def _arm_pixels(cy: int, cx: int, step: tuple[int, int], reach: int, offset: tuple[int, int] = (0, 0)):
    """(y, x) of an arm's pixels 2..``reach`` steps from the centre, shifted by ``offset``."""
    return [(cy + a * step[0] + offset[0], cx + a * step[1] + offset[1]) for a in range(2, reach + 1)]


def _is_cross(mask: np.ndarray, near: np.ndarray, grey: np.ndarray, chroma: np.ndarray | None, cy: int, cx: int,
              shape: str) -> bool:
    """Whether marked arms leave (cy, cx) in all four directions of ``shape`` (a '+' or an 'x', not a 'T' or an
    'L'; ``near``: the mask grown by 1 px, for strokes crossing between pixels) and are thin: little marked beside
    them, and for white marks darker tissue there."""
    strokes, reach, beside = CROSS_SHAPES[shape]
    h, w = mask.shape
    inside = lambda pts: [(y, x) for y, x in pts if 0 <= y < h and 0 <= x < w]  # noqa: E731
    arms = [inside(_arm_pixels(cy, cx, (sgn * s[0], sgn * s[1]), reach)) for s in strokes for sgn in (-1, 1)]
    if not all(sum(near[y, x] for y, x in arm) >= reach - 2 for arm in arms):
        return False
    side = inside([p for s in strokes for sgn in (-1, 1) for d in beside for side_sgn in (-1, 1)
                   for p in _arm_pixels(cy, cx, (sgn * s[0], sgn * s[1]), reach,
                                        (side_sgn * d * s[1], -side_sgn * d * s[0]))])
    if not side or np.mean([mask[y, x] for y, x in side]) > MARK_SIDE_MARKED:
        return False
    on_arms = [p for arm in arms for p in arm if mask[p]]
    coloured = chroma is not None and bool(on_arms) and np.median([chroma[p] for p in on_arms]) >= MARK_CHROMA
    return coloured or float(np.median([grey[y, x] for y, x in side])) <= MARK_LEVEL - MARK_SIDE_GAP


def caliper_crosses(grey: np.ndarray, area: np.ndarray | None = None,
                    chroma: np.ndarray | None = None) -> list[tuple[int, int]]:
    """``(x, y)`` (px) of the '+' and 'x' caliper marks inside the echo area of a grey frame (0..255); ``area``: the
    echo area when already measured; ``chroma``: the frame's colour (:attr:`MedicalImage.chroma`), for coloured
    marks."""
    grey = np.asarray(grey, np.float32)
    mask = graphic_mask(grey, chroma)
    if area is None:
        from .us_liver import echo_area

        area = echo_area(grey)
    if area is None or not mask.any():
        return []
    near = ndimage.binary_dilation(mask)
    found: list[tuple[int, int]] = []
    for shape, (strokes, reach, _) in CROSS_SHAPES.items():
        k = 2 * reach + 1
        thin = [ndimage.binary_dilation(_opening(mask, _stroke(s, k)) & ~_opening(mask, _stroke(s, k, MARK_THICK + 2)))
                for s in strokes]
        centres = thin[0] & thin[1]
        labels, count = ndimage.label(ndimage.binary_dilation(centres, iterations=2))
        for cy, cx in ndimage.center_of_mass(centres, labels, range(1, count + 1)):
            cy, cx = int(round(cy)), int(round(cx))
            if any(abs(cx - x) <= reach and abs(cy - y) <= reach for x, y in found):
                continue
            if not area[min(cy // 2, area.shape[0] - 1), min(cx // 2, area.shape[1] - 1)]:
                continue
            y0, x0 = max(0, cy - MARK_EXTENT), max(0, cx - MARK_EXTENT)
            part, _ = ndimage.label(near[y0 : cy + MARK_EXTENT + 1, x0 : cx + MARK_EXTENT + 1])
            own = part[cy - y0, cx - x0]
            if own == 0:
                continue
            ys, xs = np.nonzero(part == own)
            if (np.ptp(ys) < MARK_EXTENT and np.ptp(xs) < MARK_EXTENT
                    and _is_cross(mask, near, grey, chroma, cy, cx, shape)):
                found.append((cx, cy))
    return found


# text over the image: a row of at least 5 glyph-sized marks (thin bright strokes, or drawn colour, 7-24 px high, at
# most 24 px wide, tops and bottoms within 3 px, gaps under a glyph's height) inside the echo area. 2026-12-06 on the
# 562 AUL frames (all seen in training): none flagged, the longest such row 3 (1 frame; scanner labels at the sector edge),
# 0 on 359; "LIVER RT LOBE" / "SUBCOSTAL" drawn in white 16-px type over the liver of a real frame (ALTERED): 12
TEXT_GLYPHS, GLYPH_HEIGHT, GLYPH_WIDTH, GLYPH_ALIGN = 5, (7, 24), 24, 3


def text_run(grey: np.ndarray, area: np.ndarray, chroma: np.ndarray | None = None) -> int:
    """The most glyph-sized marks in one row of text inside ``area`` (full-size echo area) of a grey frame."""
    marks = (thin_bright_strokes(grey) | graphic_mask(grey, chroma) & (np.asarray(grey) < MARK_LEVEL)) & area
    labels, _ = ndimage.label(marks, np.ones((3, 3), bool))
    glyphs = sorted((cols.start, cols.stop, rows.start, rows.stop) for rows, cols in ndimage.find_objects(labels)
                    if GLYPH_HEIGHT[0] <= rows.stop - rows.start <= GLYPH_HEIGHT[1] and cols.stop - cols.start <= GLYPH_WIDTH)
    longest = 0
    for i, (_, end, top, bottom) in enumerate(glyphs):
        run = 1
        for x0, x1, y0, y1 in glyphs[i + 1 :]:
            if x0 - end > bottom - top:
                break
            if x0 >= end - 1 and abs(y0 - top) <= GLYPH_ALIGN and abs(y1 - bottom) <= GLYPH_ALIGN:
                run, end = run + 1, x1
        longest = max(longest, run)
    return longest


# body-marker icon: a closed outline (a torso or liver pictogram, often with a probe bar) of thin bright or coloured
# strokes, 16-80 px on each side, whose enclosed hole is at least a fifth of its box. 2026-12-06 on the 562 AUL frames
# (all seen in training): 145 frames hold a 16-80 px stroke part inside the sector (bright reflectors), none encloses
# more than 0.066 of its box; an ALTERED white 45x35 px torso icon with a liver outline and a probe bar drawn over the
# lesion of every 8th AUL lesion frame changed the shipped model's call on 3 of 30 (proposed ROI; 1 of 30 with the
# lesion box as ROI; |change in P| up to 0.63)
ICON_SIDE, ICON_HOLE_SHARE = (16, 80), 0.2


def icon_outlines(grey: np.ndarray, area: np.ndarray, chroma: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
    """``(x, y, width, height)`` (px) of closed drawn outlines (body-marker icons) inside ``area`` (full-size echo
    area) of a grey frame (0..255): thin bright or coloured strokes, closed by 1 px (JPEG breaks), enclosing a
    hole of at least :data:`ICON_HOLE_SHARE` of their box."""
    marks = (thin_bright_strokes(grey) | graphic_mask(grey, chroma)) & area
    marks |= ndimage.binary_closing(marks)
    labels, _ = ndimage.label(marks, np.ones((3, 3), bool))
    found = []
    for i, (rows, cols) in enumerate(ndimage.find_objects(labels)):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if not (ICON_SIDE[0] <= h <= ICON_SIDE[1] and ICON_SIDE[0] <= w <= ICON_SIDE[1]):
            continue
        part = labels[rows, cols] == i + 1
        if (ndimage.binary_fill_holes(part) & ~part).sum() >= ICON_HOLE_SHARE * h * w:
            found.append((cols.start, rows.start, w, h))
    return found
