"""SYNTHETIC lesions inserted into REAL CT (IRCADb p07, read in place, nothing written): the shipped default finds a
hyperdense lesion in a series declared arterial and a hypodense one in a portal-venous series, and the bright one
only where the hyperdense search runs (BENCHMARKS.md ct-liver §5 measures the whole grid)."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.ct_liver.evaluation import lesion_recall
from lesiondx.ct_liver.insertion import insertion_centres, sphere_weight, with_inserted_lesions
from lesiondx.ct_liver.liver import liver_flags
from lesiondx.ct_liver.pipeline import detect_parts, load_bundle
from lesiondx.ct_liver.study import labelled_studies


def test_sphere_weight_is_one_inside_and_zero_beyond_one_voxel():
    w = sphere_weight((9, 61, 61), (4, 30, 30), 10.0, (3.0, 0.5, 0.5))
    assert w[4, 30, 30] == 1.0 and w[4, 30, 50] == 1.0 and w[4, 30, 51] == 0.0 and w[4, 30, 10] == 1.0
    assert w[1, 30, 30] == 1.0 and w[0, 30, 30] == 0.0  # 9 mm and 12 mm from the centre along z


def _found(study, bundle) -> dict:
    parts = detect_parts(study, bundle)
    flags = liver_flags(parts.found, parts.liver, bundle.cfg.inside_liver_fraction, bundle.cfg.edge_claw)
    kept = [d for d, f in zip(parts.found, flags) if f]
    return lesion_recall(kept, study.lesion, sorted(int(v) for v in np.unique(study.lesion) if v > 0), iou=0.3)


@pytest.mark.slow
def test_bright_and_dark_lesions_inserted_into_real_liver_are_found(ircadb_folder):
    study = labelled_studies(ircadb_folder, patients=["p07"])[0]
    bundle = load_bundle("default")
    centres = insertion_centres(study, 12.5, 2, np.random.default_rng(7))
    assert len(centres) == 2 and all(study.liver[c] for c in centres)
    bright = with_inserted_lesions(study, centres, 12.5, 60.0, "arterial")
    dark = with_inserted_lesions(study, centres, 12.5, -60.0, "portal-venous")
    assert _found(bright, bundle)["found"] >= 1 and _found(dark, bundle)["found"] >= 1
    assert _found(with_inserted_lesions(study, centres, 12.5, 60.0, "portal-venous"), bundle)["found"] == 0
