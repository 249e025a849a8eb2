import numpy as np
import pytest

from lesiondx.ct_liver.liver import chains, hu_liver_mask, inside_liver, vote_by_component
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


@pytest.mark.xfail(reason="known limitation: the HU rule leaves large hypodense tumours bulging at the liver "
                          "edge partly outside its mask (IRCADb p01 tumour 2: inside on 65 % of its slices)")
def test_real_largest_edge_tumour_kept(ircadb_folder):
    assert all(_vote(ircadb_folder, ircadb_rows(ircadb_folder, inside=True, n=10)))
