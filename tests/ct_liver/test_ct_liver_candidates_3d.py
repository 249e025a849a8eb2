"""The candidates' 3D lesion rules (session 6) on SYNTHETIC volumes: a ball is kept; a flat disc, a long rod
along z and an oblique tube are not; propagation follows a lesion and says when it was cut off; one box per
lesion part per slice."""

import numpy as np

from lesiondx.ct_liver.candidates import Blob, detect_candidates, propagate, slice_boxes
from lesiondx.ct_liver.synthetic import phantom_slice
from lesiondx.data import Box

SLICE_MM = 2.0  # SYNTHETIC volumes: 1 mm pixels, 2 mm slices
N = 24


def _liver(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    slices = [phantom_slice("MET", "portal-venous", size=160, centre=(57, 67), radius=0.1, rng=rng) for _ in range(N)]
    return np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])


def _darken(hu: np.ndarray, centres: dict[int, tuple[float, float, float]], hu_drop: float = 40.0) -> np.ndarray:
    """``centres``: slice → (x, y, radius mm) of a dark disc."""
    out = hu.copy()
    yy, xx = np.mgrid[:hu.shape[1], :hu.shape[2]]
    for z, (x, y, r) in centres.items():
        out[z][(xx - x) ** 2 + (yy - y) ** 2 <= r * r] -= hu_drop
    return out


def _found(hu, liver, box: Box) -> set[int]:
    return {d.slice for d in detect_candidates(hu, liver, 1.0, slice_mm=SLICE_MM)
            if d.score >= 0.25 and d.box.iou(box) >= 0.3}


def test_a_ball_is_kept_a_flat_disc_a_rod_and_an_oblique_tube_are_not():
    hu, liver = _liver()
    ball = {z: (57, 67, float(np.sqrt(81 - ((z - 12) * SLICE_MM) ** 2))) for z in range(8, 17)}  # 18 mm ball
    assert len(_found(_darken(hu, ball), liver, Box(48, 58, 67, 77))) >= 5
    disc = {z: (57, 67, 12.0) for z in (11, 12)}  # 24 mm wide, 4 mm deep: a partial-volume cut, not a lesion
    assert not _found(_darken(hu, disc), liver, Box(45, 55, 70, 80))
    assert _found(_darken(hu, {0: (57, 67, 12.0), 1: (57, 67, 12.0)}), liver, Box(45, 55, 70, 80))  # cut by the volume
    rod = {z: (57, 67, 4.5) for z in range(2, 22)}  # 9 mm wide, 40 mm long along z: a vessel, not a lesion
    assert not _found(_darken(hu, rod), liver, Box(52, 62, 62, 72))
    tube = {z: (46 + 2.5 * (z - 8), 67, 4.5) for z in range(8, 16)}  # 9 mm wide, drifts 17.5 mm in 16 mm of z
    assert not any(d.score >= 0.25 for d in detect_candidates(_darken(hu, tube), liver, 1.0, slice_mm=SLICE_MM))
    # the same tube kept upright (no drift) and as long is a 16 mm × 9 mm oval: kept
    upright = {z: (57, 67, 4.5) for z in range(8, 16)}
    assert _found(_darken(hu, upright), liver, Box(52, 62, 62, 72))


def _disc(shape, x, y, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


def _blob(z, plane):
    rows, cols = np.nonzero(plane)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return Blob(z, slice(r0, r1), slice(c0, c1), plane[r0:r1, c0:c1])


def test_propagation_follows_a_lesion_and_says_when_it_was_cut_off():
    shape = (60, 60)
    allowed = np.stack([_disc(shape, 30, 30, 6 + 2 * min(z, 8 - z)) for z in range(9)])  # a ball, widest at z 4
    seed = _blob(4, allowed[4])
    search = np.ones((9, *shape), bool)
    more, truncated = propagate([seed], allowed, search, 1.0, 5.0, 150.0)
    assert sorted(b.slice for b in more) == [0, 1, 2, 3, 5, 6, 7, 8] and not truncated  # ran to the volume's ends
    small = allowed.copy()
    small[7:] = False  # the ball ends: its end was seen
    more, truncated = propagate([seed], small, search, 1.0, 5.0, 150.0)
    assert max(b.slice for b in more) == 6 and not truncated
    leak = allowed.copy()
    leak[6] = _disc(shape, 30, 30, 14) & ~_disc(shape, 30, 30, 9)  # a ring (solidity ≈ 0.6): no longer a lesion blob
    more, truncated = propagate([seed], leak, search, 1.0, 5.0, 150.0)
    assert max(b.slice for b in more) == 5 and truncated
    outside = search.copy()
    outside[2] = False  # the liver region ends: cut off, not ended
    more, truncated = propagate([seed], allowed, outside, 1.0, 5.0, 150.0)
    assert min(b.slice for b in more) == 3 and truncated
    grown = np.stack([_disc(shape, 30, 30, 6 + 8 * abs(z - 4)) for z in range(9)])  # 8 mm per slice: too fast
    more, _ = propagate([_blob(4, grown[4])], grown, search, 1.0, 5.0, 150.0)
    assert all(b.mask.sum() <= _disc(shape, 30, 30, 6 + 4 * abs(b.slice - 4) + 1).sum() for b in more)


def test_parts_of_one_lesion_on_a_slice_become_one_box_unless_far_apart():
    shape = (80, 80)
    near = [_blob(3, _disc(shape, 20, 20, 6)), _blob(3, _disc(shape, 36, 20, 6))]  # 4 px gap at 1 mm
    assert slice_boxes(near, 1.0) == [(3, (14, 14, 27, 43))]
    far = [_blob(3, _disc(shape, 20, 20, 6)), _blob(3, _disc(shape, 60, 20, 6))]  # 28 mm apart: two parts
    assert len(slice_boxes(far, 1.0)) == 2
