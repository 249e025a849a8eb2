"""Claw rule for lesions at the liver edge (SYNTHETIC geometry only)."""

import numpy as np
import pytest

from lesiondx.ct_liver.candidates import Detection
from lesiondx.ct_liver.edge import enveloped_fraction, liver_envelope
from lesiondx.ct_liver.liver import liver_flags
from lesiondx.data import Box


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _scene(depth: float, r: float = 12.0, slices: int = 3):
    """SYNTHETIC: a round liver (radius 60 px) with a hypodense blob of radius ``r`` whose centre lies
    ``depth`` × r inside (> 0) or outside (< 0) the liver's right edge; the liver mask excludes the blob,
    as the HU band does."""
    shape = (160, 200)
    liver2d = _disk(shape, (80, 80), 60)
    blob2d = _disk(shape, (80, 80 + 60 - depth * r), r)
    liver = np.repeat((liver2d & ~blob2d)[None], slices, axis=0)
    blob = np.repeat(blob2d[None], slices, axis=0)
    return blob, liver


def test_bulging_edge_blob_is_kept_and_touching_blob_dropped():
    sunk, liver = _scene(0.4)  # a tumour bulging out of the liver edge: the liver wraps over half of it
    assert (sunk & liver).sum() == 0  # its own voxels lie outside the mask: the own-voxel rule drops it
    assert enveloped_fraction(sunk, liver) > 0.5
    for depth in (-1.0, -0.4):  # a mass outside that only touches the liver, or indents it
        outside, liver_out = _scene(depth)
        assert enveloped_fraction(outside, liver_out) < 0.5


def test_liver_flags_use_the_envelope_only_when_asked():
    liver = np.zeros((1, 50, 50), dtype=bool)
    d = Detection(0, Box(10, 10, 20, 20), 0.9, 1, -40.0, inside_fraction=0.3, envelope_fraction=0.8)
    far = Detection(0, Box(30, 30, 40, 40), 0.9, 2, -40.0, inside_fraction=0.3, envelope_fraction=0.2)
    assert liver_flags([d, far], liver, 0.5) == [False, False]
    assert liver_flags([d, far], liver, 0.5, edge_claw=True) == [True, False]


def test_envelope_fills_a_narrow_notch_and_checks_shapes():
    plane = np.zeros((40, 40), dtype=bool)
    plane[5:35, 5:35] = True
    plane[5:20, 18:22] = False  # a 4 px notch from the top edge
    env = liver_envelope(plane, 4.0)
    assert env[6:20, 18:22].all() and not env[:5].any()  # the notch is bridged (all but its mouth row); nothing grows outward
    with pytest.raises(ValueError, match="same"):
        enveloped_fraction(np.zeros((1, 4, 4), bool), np.zeros((1, 5, 5), bool))
    assert enveloped_fraction(np.zeros((1, 4, 4), bool), np.ones((1, 4, 4), bool)) == 0.0
