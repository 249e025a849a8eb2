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


@pytest.fixture(scope="module")
def p07():
    from lesiondx_testdata import SHARED_DATA

    found = sorted(p for p in SHARED_DATA.glob("liver_ircadb01_*") if (p / "labels.csv").is_file())
    if not found:
        pytest.skip(f"no liver_ircadb01_* dataset under {SHARED_DATA}")
    return labelled_studies(found[0], patients=["p07"])[0]


@pytest.mark.slow
def test_bright_and_dark_lesions_inserted_into_real_liver_are_found(p07):
    study, bundle = p07, load_bundle("default")
    centres = insertion_centres(study, 12.5, 2, np.random.default_rng(7))
    assert len(centres) == 2 and all(study.liver[c] for c in centres)
    bright = with_inserted_lesions(study, centres, 12.5, 60.0, "arterial")
    dark = with_inserted_lesions(study, centres, 12.5, -60.0, "portal-venous")
    assert _found(bright, bundle)["found"] >= 1 and _found(dark, bundle)["found"] >= 1
    assert _found(with_inserted_lesions(study, centres, 12.5, 60.0, "portal-venous"), bundle)["found"] == 0


@pytest.mark.slow
def test_evaluate_searches_bright_lesions_where_predict_would_identify_an_arterial_phase(p07, tmp_path, monkeypatch):
    """labels.csv without a phase column: evaluate used to search hypodense lesions only, whatever the series'
    enhancement, while predict identifies the phase (aorta / portal-vein HU) and searches hyperdense lesions in an
    arterial series. Now evaluate identifies it too (a 40-slice cut of p07 with a +60 HU lesion; the phase call is
    forced to 'arterial' here because p07 is portal-venous, as the real call below says)."""
    from dataclasses import replace

    from lesiondx.ct_liver import evaluation
    from lesiondx.ct_liver.phases import PhaseCall

    centre = insertion_centres(p07, 12.5, 1, np.random.default_rng(7))[0]
    z0 = max(0, centre[0] - 20)
    cut = replace(p07, hu=p07.hu[z0:z0 + 40], grey=p07.grey[z0:z0 + 40], liver=p07.liver[z0:z0 + 40],
                  lesion=p07.lesion[z0:z0 + 40])
    study = with_inserted_lesions(cut, [(centre[0] - z0, centre[1], centre[2])], 12.5, 60.0, None)
    bundle = load_bundle("default")
    real = evaluation.evaluate_ct(tmp_path, [study], bundle)
    assert real["phases"][study.study_id]["phase"] == "portal-venous"  # p07's own enhancement
    recall = lambda m: m["detection"]["detectors"]["hu-candidates"]["per_patient"][study.study_id][  # noqa: E731
        "lesion_level_iou0.1"]["found"]
    assert recall(real) == 0
    monkeypatch.setattr(evaluation, "series_phase", lambda *a: PhaseCall("arterial", "enhancement", "forced (test)"))
    assert recall(evaluation.evaluate_ct(tmp_path, [study], bundle)) == 1
