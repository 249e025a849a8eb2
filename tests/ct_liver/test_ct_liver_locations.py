"""Liver lesion locations in patient terms (right / left lobe, approximate), from the liver mask and IOP."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lesiondx.ct_liver.locations import RIGHT_LOBE_SHARE, liver_frame
from lesiondx.io import read_image, read_raster_array

FLIPPED = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _slab_liver() -> np.ndarray:
    """SYNTHETIC liver: a uniform slab over image columns 10–89 on 3 slices."""
    liver = np.zeros((3, 100, 100), dtype=bool)
    liver[:, 30:70, 10:90] = True
    return liver


def test_lobes_split_the_liver_volume_from_the_patients_right():
    frame = liver_frame(_slab_liver(), None, 1.0, step=1)  # no IOP: image left = patient right (assumed)
    assert frame.orientation.assumed
    divide_col = 10 + RIGHT_LOBE_SHARE * 80  # 60 % of the slab lies image-left of this column
    assert frame.box_location([15, 45, 25, 55], True) == "liver, right lobe"
    assert frame.box_location([80, 45, 88, 55], True) == "liver, left lobe"
    c = int(divide_col)
    assert frame.box_location([c - 3, 45, c + 3, 55], True) == "liver, near the right/left lobe boundary"
    assert frame.box_location([15, 45, 25, 55], False) == "outside the liver mask"


def test_a_flipped_image_puts_the_same_lesion_in_the_other_lobe():
    frame = liver_frame(_slab_liver(), FLIPPED, 1.0, step=1)
    assert not frame.orientation.assumed
    assert frame.box_location([15, 45, 25, 55], True) == "liver, left lobe"
    assert frame.box_location([80, 45, 88, 55], True) == "liver, right lobe"


def test_no_liver_no_lobe():
    assert liver_frame(np.zeros((2, 50, 50), bool)).box_location([1, 1, 5, 5], True) is None


def test_real_ircadb_liver_lies_on_the_patients_right_and_splits_into_lobes(ircadb_folder):
    """Real CT (IRCADb, read in place) with its own IOP and reference liver masks: the liver's centre lies on the
    patient's right of the body's centre (the orientation is read the right way round); its right-most fifth is
    the right lobe, its left-most tenth the left lobe."""
    from lesiondx.io.anatomy import patient_side

    labels = pd.read_csv(ircadb_folder / "labels.csv")
    rows = labels[labels["patient_id"] == labels["patient_id"].iloc[0]]
    rows = rows.iloc[len(rows) // 3 : 2 * len(rows) // 3 : 6]
    liver = np.stack([read_raster_array(ircadb_folder / p, grey=True) > 127 for p in rows["liver_mask"]])
    image = read_image(ircadb_folder / rows["image"].iloc[0])
    frame = liver_frame(liver, image.orientation, float(image.spacing[-1]))
    assert image.orientation is not None and not frame.orientation.assumed
    body_rows, body_cols = np.nonzero(image.pixels > -500)
    body_centre = ((body_rows.min() + body_rows.max()) / 2, (body_cols.min() + body_cols.max()) / 2)
    _, r, c = np.nonzero(liver)
    assert patient_side(r.mean() - body_centre[0], c.mean() - body_centre[1], frame.orientation) == "right"
    x = frame.x(r, c)
    for part, lobe in ((x <= np.quantile(x, 0.2), "right lobe"), (x >= np.quantile(x, 0.9), "left lobe")):
        assert frame.lobe(r[part].mean(), c[part].mean()) == lobe
