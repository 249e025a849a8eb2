"""Rule-based hypodense-lesion candidates: what they keep and what they must reject."""

import numpy as np

from lesiondx.ct_liver.candidates import detect_candidates, fill_small_holes
from lesiondx.ct_liver.detector import lesion_boxes
from lesiondx.ct_liver.liver import hu_liver_mask, liver_flags
from lesiondx.ct_liver.synthetic import phantom_slice
from lesiondx.data import Box
from lesiondx.io import read_image, read_raster_array

from ct_liver_helpers import ircadb_rows

MM = 1.0  # SYNTHETIC phantom pixel size (mm)


def _liver_volume(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SYNTHETIC liver phantom without a lesion (radius-0 lesion), ``n`` slices, 1 mm pixels."""
    rng = np.random.default_rng(seed)
    slices = [phantom_slice("MET", "portal-venous", size=160, centre=(57, 67), radius=0.1, rng=rng) for _ in range(n)]
    return np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])


def _disk_mask(shape, cx, cy, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _hits(dets, box):
    return [d for d in dets if d.score >= 0.25 and d.box.iou(box) >= 0.3]


def test_round_hypodense_lesion_on_adjacent_slices_is_found_single_slice_blip_is_not():
    hu, liver = _liver_volume()
    blob = _disk_mask(hu.shape[1:], 57, 67, 8)  # 16 mm, 40 HU darker than the parenchyma
    both = hu.copy()
    both[1:3][:, blob] -= 40
    dets = detect_candidates(both, liver, MM)
    box = Box(49, 59, 66, 76)
    assert {d.slice for d in _hits(dets, box)} == {1, 2}
    assert all(0.99 <= d.inside_fraction and d.contrast_hu < -25 for d in _hits(dets, box))
    blip = hu.copy()
    blip[1][blob] -= 40
    assert not _hits(detect_candidates(blip, liver, MM), box)  # one slice only: noise, not a lesion
    assert len(_hits(detect_candidates(blip[1:2], liver[1:2], MM), box)) == 1  # single-slice input is judged alone


def test_thin_tube_and_faint_blob_are_rejected():
    hu, liver = _liver_volume()
    tube = hu.copy()
    tube[:, 64:67, 40:80] -= 60  # a 3 mm wide dark duct 40 mm long
    assert not [d for d in detect_candidates(tube, liver, MM) if d.box.iou(Box(40, 64, 80, 67)) > 0.1]
    faint = hu.copy()
    faint[:, _disk_mask(hu.shape[1:], 57, 67, 8)] -= 8  # 8 HU: within the parenchyma's noise margin
    assert not _hits(detect_candidates(faint, liver, MM), Box(49, 59, 66, 76))


def test_fill_small_holes_keeps_large_holes_open():
    ring = _disk_mask((40, 40), 20, 20, 15) & ~_disk_mask((40, 40), 20, 20, 10)
    dot = _disk_mask((40, 40), 20, 20, 6) & ~_disk_mask((40, 40), 20, 20, 1)
    assert not fill_small_holes(ring, 50)[20, 20]  # a ~300 px hole (e.g. the liver inside a rim) stays open
    assert fill_small_holes(dot, 50)[20, 20]  # a vessel-sized hole is filled


def test_real_extrahepatic_mass_gets_no_inside_liver_box(ircadb_folder):
    """IRCADb (read in place): on 16 real slices through the mass outside the liver, no candidate kept
    inside the liver overlaps the mass."""
    rows = ircadb_rows(ircadb_folder, inside=False, n=16)
    hu = np.stack([read_image(ircadb_folder / p).pixels for p in rows["image"]])
    mass = np.stack([read_raster_array(ircadb_folder / p) for p in rows["lesion_mask"]]) == rows["lesion_value"].iloc[0]
    spacing = read_image(ircadb_folder / rows["image"].iloc[0]).spacing[-1]
    liver = hu_liver_mask(hu, spacing)
    dets = [d for d in detect_candidates(hu, liver, spacing) if d.score >= 0.25]
    kept = [d for d, f in zip(dets, liver_flags(dets, liver, 0.5)) if f]
    on_mass = [d for d in kept if any(d.box.iou(b) >= 0.1 for b in lesion_boxes(mass[d.slice].astype(int)))]
    assert not on_mass
