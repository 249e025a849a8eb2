import numpy as np
import pytest

from lesiondx.ct_liver.candidates import Detection
from lesiondx.ct_liver.edge import enveloped_fraction
from lesiondx.ct_liver.liver import chains, hu_liver_mask, inside_fraction, inside_liver, liver_flags, vote_by_component
from lesiondx.ct_liver.synthetic import phantom_slice
from lesiondx.data import Box, mask_box
from lesiondx.io import read_image, read_raster_array
from lesiondx.models import dice_score

from ct_liver_helpers import ircadb_rows


def test_inside_liver_drops_boxes_outside():
    liver = np.zeros((100, 100), dtype=bool)
    liver[20:60, 10:50] = True
    assert inside_liver(Box(20, 30, 30, 40), liver)
    assert not inside_liver(Box(70, 70, 90, 90), liver)  # far outside: dropped
    assert inside_liver(Box(40, 30, 60, 40), liver, 0.3)  # half in, centre on the edge
    assert not inside_liver(Box(45, 65, 75, 95), liver, 0.3)  # barely touching (< 30 %)
    assert inside_fraction(Box(40, 30, 60, 40), liver) == pytest.approx(0.5, abs=0.06)  # the inscribed ellipse
    assert not inside_liver(Box(0, 0, 22, 22), liver)  # only its corner pixels lie in the liver


def test_liver_filter_judges_the_candidates_own_pixels():
    """A candidate whose own voxels lie mostly outside the liver is dropped even when its box sits in
    the liver (an extrahepatic mass straddling the edge), and vice versa; boxes without pixels (NaN)
    fall back to the box's inscribed ellipse, voted over chained slices."""
    liver = np.zeros((2, 100, 100), dtype=bool)
    liver[:, 20:60, 10:50] = True
    inside_box, outside_box = Box(20, 30, 40, 50), Box(60, 65, 90, 95)
    found = [Detection(0, inside_box, 0.9, 1, -40.0, 0.2), Detection(0, outside_box, 0.9, 2, -40.0, 0.8),
             Detection(0, inside_box, 0.9), Detection(1, Box(21, 30, 41, 50), 0.9), Detection(1, outside_box, 0.9)]
    assert liver_flags(found, liver, 0.5) == [False, True, True, True, False]


def test_component_vote_is_lesion_level():
    assert vote_by_component([0, 0, 0, 1, -1], [True, True, False, False, True]) == [True, True, True, False, True]
    boxes = [Box(10, 10, 30, 30), Box(11, 11, 31, 31), Box(60, 60, 80, 80), Box(12, 10, 30, 30)]
    ids = chains([0, 1, 1, 3], boxes)
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3]}) == 3  # slice gap at 2 breaks the chain


def test_hu_rule_finds_the_phantom_liver():
    rng = np.random.default_rng(0)
    slices = [phantom_slice("HCC", "portal-venous", size=128, centre=(45, 55), radius=8, rng=rng) for _ in range(4)]
    hu = np.stack([s[0] for s in slices])
    ref = np.stack([s[1] for s in slices])
    mask = hu_liver_mask(hu, 2.5)
    assert dice_score(mask, ref) > 0.85
    assert mask[:, 55, 45].all()  # the hypodense lesion inside the liver stays inside the mask


def _load(folder, rows):
    hu = np.stack([read_image(folder / p).pixels for p in rows["image"]])
    lesion = np.stack([read_raster_array(folder / p) for p in rows["lesion_mask"]])
    return hu, lesion == rows["lesion_value"].iloc[0]


def _vote(folder, rows) -> list[bool]:
    hu, lesion = _load(folder, rows)
    spacing = read_image(folder / rows["image"].iloc[0]).spacing[-1]
    liver = hu_liver_mask(hu, spacing)
    boxes = [(z, mask_box(lesion[z])) for z in range(len(rows)) if lesion[z].any()]
    assert boxes
    return vote_by_component([0] * len(boxes), [inside_liver(b, liver[z]) for z, b in boxes])


def test_real_extrahepatic_mass_is_dropped_and_liver_tumour_kept(ircadb_folder):
    """IRCADb (read in place): the largest mass outside the liver is dropped by the HU-rule liver filter
    and a median-sized liver tumour is kept (lesion-level vote over its slices' boxes)."""
    assert not any(_vote(ircadb_folder, ircadb_rows(ircadb_folder, inside=False, n=10)))
    assert all(_vote(ircadb_folder, ircadb_rows(ircadb_folder, inside=True, n=10, pick="median")))


def _claw(folder, rows) -> tuple[float, float]:
    """Own-voxel and claw-rule (:func:`enveloped_fraction`) shares of one lesion's truth voxels in the HU liver."""
    hu, lesion = _load(folder, rows)
    liver = hu_liver_mask(hu, read_image(folder / rows["image"].iloc[0]).spacing[-1])
    return float((lesion & liver).sum() / lesion.sum()), enveloped_fraction(lesion, liver)


def test_real_largest_edge_tumour_kept(ircadb_folder):
    """IRCADb (read in place): the largest liver tumour (p01 tumour 2) bulges out of the HU mask, so the own-voxel
    rule drops it; the claw rule (benchmarks/ct_liver.md 2f) keeps it. The largest extrahepatic mass stays out."""
    own, claw = _claw(ircadb_folder, ircadb_rows(ircadb_folder, inside=True, n=10))
    assert own < 0.5 <= claw
    own_mass, claw_mass = _claw(ircadb_folder, ircadb_rows(ircadb_folder, inside=False, n=10))
    assert own_mass < 0.5 and claw_mass < 0.5
