"""Slice continuity of the HU liver rule: a neighbouring organ joined to the liver only through a few
slices (a SYNTHETIC phantom; and the real IRCADb patient with the extrahepatic mass, read in place)."""

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_liver.liver import hu_liver_mask, slice_continuity
from lesiondx.io import read_image, read_raster_array
from lesiondx.models import dice_score


def _phantom(slices: int = 12, size: int = 128, bridge_slices: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SYNTHETIC HU volume (2.5 mm pixels): liver on the image left (largest in the middle slices), a
    "spleen" of the same density on the image right, joined to the liver by a 30 mm wide bridge on the
    first ``bridge_slices`` slices only (where the liver+bridge+spleen cross-section is the largest)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((xx - 64) / 58) ** 2 + ((yy - 64) / 45) ** 2 <= 1
    scales = 0.85 + 0.15 * np.sin(np.pi * (np.arange(slices) + 0.5) / slices)  # 0.85 at the ends, 1 mid
    livers = np.stack([((xx - 46) / (28 * k)) ** 2 + ((yy - 54) / (25 * k)) ** 2 <= 1 for k in scales])
    spleen = ((xx - 98) / 10) ** 2 + ((yy - 64) / 14) ** 2 <= 1
    bridge = (yy >= 50) & (yy < 62) & (xx >= 70) & (xx < 92)
    hu = np.empty((slices, size, size), dtype=np.float32)
    for z in range(slices):
        organ = livers[z] | spleen | (bridge if z < bridge_slices else False)
        hu[z] = np.where(organ, 110.0, np.where(body, 30.0, -1000.0)) + rng.normal(0, 8, (size, size))
    return hu, livers, np.repeat(spleen[None], slices, 0)


def test_continuity_drops_an_organ_joined_through_other_slices():
    hu, liver, spleen = _phantom()
    old = hu_liver_mask(hu, 2.5, continuity=False)
    new = hu_liver_mask(hu, 2.5)
    assert old[3:][spleen[3:]].mean() > 0.8  # the phantom reproduces the leak of the 3D-component rule
    assert new[3:][spleen[3:]].mean() < 0.05  # beside the liver on every later slice: dropped
    assert new[:3][spleen[:3]].mean() < 0.3  # on the bridge slices only a few mm past the liver's outline
    assert dice_score(new, liver) > 0.9 and dice_score(new, liver) > dice_score(old, liver)


def test_continuity_starts_at_the_largest_slice_and_stops_when_the_liver_ends():
    eroded = np.zeros((5, 20, 20), dtype=bool)
    eroded[0:3, 4:12, 4:12] = True  # the liver on slices 0-2 (largest on 1)
    eroded[1, 3:13, 3:13] = True
    eroded[4, 4:12, 4:12] = True  # the same place again after an empty slice: not liver
    eroded[2, 4:12, 14:18] = True  # a separate part appearing beside it on slice 2
    eroded[0, 4:12, 12:16] = True  # on slice 0 a neighbour joined in-plane: only 1 px past slice 1's liver stays
    out = slice_continuity(eroded, eroded.copy(), grow_px=1, min_overlap=0.5)
    assert out[0:3, 6, 6].all() and not out[3:].any()
    assert not out[2, :, 14:].any()
    assert out[1].sum() == 100 and out[0, 6, 13] and not out[0, 6, 14:].any()
    right = np.zeros((1, 1, 20), dtype=bool)
    right[..., 14:] = True  # seeding where only the neighbour lies starts from the neighbour's slice instead
    assert slice_continuity(eroded, eroded.copy(), 1, 0.5, seed_in=right)[2, 6, 15]


def test_real_liver_dice_improves_on_the_patient_with_an_extrahepatic_mass(ircadb_folder):
    """IRCADb (read in place): the patient of the largest extrahepatic mass; the continuity rule must
    not lose liver Dice against the 3D-component rule and stay ≥ 0.88."""
    lesions = pd.read_csv(ircadb_folder / "lesions.csv")
    outside = lesions[lesions["inside_liver"] == 0]
    if outside.empty:
        pytest.skip(f"{ircadb_folder}: no extrahepatic mass in lesions.csv")
    labels = pd.read_csv(ircadb_folder / "labels.csv")
    rows = labels[labels["patient_id"] == outside.iloc[0]["patient_id"]].sort_values("slice_index")
    images = [read_image(ircadb_folder / p) for p in rows["image"]]
    hu = np.stack([im.pixels for im in images])
    ref = np.stack([read_raster_array(ircadb_folder / p) > 0 for p in rows["liver_mask"]])
    spacing = images[0].spacing[-1]
    old = dice_score(hu_liver_mask(hu, spacing, continuity=False), ref)
    new = dice_score(hu_liver_mask(hu, spacing), ref)
    assert new >= 0.88 and new >= old
