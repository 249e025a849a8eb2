"""Phase identification, alignment, hyperdense candidates and the measured characterisation (SYNTHETIC phantoms)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_liver import task
from lesiondx.ct_liver.candidates import detect_candidates
from lesiondx.ct_liver.characterise import PhaseMeasure, evidence, features
from lesiondx.ct_liver.phases import (SeriesTags, VesselLevels, identify_phase, phase_from_enhancement, phases_by_time,
                                      shifted, translation)
from lesiondx.ct_liver.synthetic import make_multiphase_folder, phantom_slice

KINDS = ("HCC", "FNH", "HEM", "cyst", "MET", "ICC")


@pytest.mark.parametrize(("aorta", "vein", "phase"), [
    (40.0, 45.0, "non-contrast"), (320.0, 130.0, "arterial"), (180.0, 160.0, "portal-venous"),
    (235.0, 166.0, "portal-venous"), (120.0, 115.0, "delayed"), (None, 150.0, None)])
def test_phase_from_aorta_and_portal_vein_enhancement(aorta, vein, phase):
    assert phase_from_enhancement(aorta, vein).phase == phase


def test_given_phase_beats_dicom_tags_beat_enhancement():
    arterial = VesselLevels(320.0, 130.0)
    assert identify_phase(None, None, arterial).source == "enhancement"
    assert identify_phase("delayed", None, arterial).phase == "delayed"
    assert identify_phase("delayed", "portal-venous", arterial).phase == "portal-venous"


def test_two_contrast_series_are_ordered_by_acquisition_time():
    early, late = SeriesTags("IOMERON", "101500"), SeriesTags("IOMERON", "101540")
    assert phases_by_time([late, early]) == ["portal-venous", "arterial"]
    assert phases_by_time([late, SeriesTags("", "101500")]) == [None, None]  # no contrast agent: no call
    assert identify_phase(None, None, VesselLevels(None, None), "arterial").source == "dicom-tags"


def test_translation_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    ref = np.stack([phantom_slice("HCC", "portal-venous", centre=(45, 50), radius=8, rng=rng)[0] for _ in range(6)])
    moved = shifted(ref, (1, 4, -3), ref.shape, -1000.0)
    shift = translation(ref, moved)
    assert shift == (-1, -4, 3)
    back = shifted(moved, shift, ref.shape, -1000.0)
    assert np.abs(back[2:5, 10:-10, 10:-10] - ref[2:5, 10:-10, 10:-10]).mean() < 1.0


def test_hyperdense_candidates_find_an_arterial_bright_lesion_the_hypodense_search_misses():
    rng = np.random.default_rng(1)
    slices = [phantom_slice("HCC", "arterial", size=128, centre=(45, 54), radius=9, rng=rng) for _ in range(4)]
    hu, liver = np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])
    lesion = slices[0][2]
    hyper = detect_candidates(hu, liver, 2.0, polarity="hyper")
    hypo = detect_candidates(hu, liver, 2.0, polarity="hypo")
    assert hyper and all(d.contrast_hu > 15 for d in hyper)
    ys, xs = np.nonzero(lesion)
    assert any(d.box.x1 <= xs.mean() <= d.box.x2 and d.box.y1 <= ys.mean() <= d.box.y2 for d in hyper)
    assert not any(d.box.x1 <= xs.mean() <= d.box.x2 and d.box.y1 <= ys.mean() <= d.box.y2 for d in hypo)
    with pytest.raises(ValueError, match="polarity"):
        detect_candidates(hu, liver, 2.0, polarity="iso")


def _measure(phase, lesion, core, rim, liver):
    return PhaseMeasure(phase, lesion, core, rim, core, liver, 5.0, rim + 3, float(rim - core >= 15))


def test_single_portal_venous_phase_says_which_features_need_the_arterial_phase():
    feats = {f.name: f for f in features({"portal-venous": _measure("portal-venous", 70, 65, 75, 110)})}
    for name in ("aphe", "washout", "peripheral_nodular_enhancement", "centripetal_fill_in", "rim_enhancement"):
        assert feats[name].present is None and "arterial" in feats[name].reason
    assert feats["enhancing_capsule"].present is False and feats["water_density_non_enhancing"].present is False
    ev = evidence(list(feats.values()))
    assert ev.pattern is None and "aphe" in ev.verdict


def test_a_water_dense_core_on_one_contrast_phase_claims_no_measured_change():
    """One portal-venous phase (IRCADb p01's fluid finding by the gallbladder fossa read 'change 0 HU (< 10 =
    non-enhancing)'): no change was measured, the reason must not say one was."""
    feat = {f.name: f for f in features({"portal-venous": _measure("portal-venous", 5, 3, 8, 120)})}
    water = feat["water_density_non_enhancing"]
    assert water.present is True and "change 0 HU" not in water.reason and "not measured (one phase)" in water.reason
    two = {f.name: f for f in features({"arterial": _measure("arterial", 5, 3, 8, 90),
                                        "portal-venous": _measure("portal-venous", 6, 4, 9, 120)})}
    assert "change 1 HU" in two["water_density_non_enhancing"].reason


def test_evidence_rule_table_hcc_and_excluded_features():
    feats = features({"arterial": _measure("arterial", 135, 135, 135, 80),
                      "portal-venous": _measure("portal-venous", 80, 80, 80, 110)})
    by = {f.name: f for f in feats}
    assert by["aphe"].present and by["aphe"].hu == pytest.approx(55) and by["washout"].present
    ev = evidence(feats)
    assert (ev.pattern, ev.group) == ("HCC", "malignant") and ev.scores["FNH"] == 0.0  # washout excludes FNH


def _two_phase_folders(root, kinds, seed):
    data = make_multiphase_folder(root / "data", kinds=kinds, patients_per_kind=1, slices=4, size=128, seed=seed)
    frame = pd.read_csv(data / "labels.csv")
    out = {}
    for (pid, kind), rows in frame.groupby(["patient_id", "label"]):
        folders = []
        for phase in ("arterial", "portal-venous"):
            folder = root / pid / phase
            folder.mkdir(parents=True)
            for rec in rows[rows["phase"] == phase].itertuples():
                shutil.copy(data / rec.image, folder / f"slice_{rec.slice_index:02d}.png")
            folders.append(folder)
        out[kind] = folders
    return out


def test_every_synthetic_enhancement_pattern_is_characterised_through_predict(tmp_path):
    """SYNTHETIC two-phase phantoms (one per lesion type) through the shipped default's predict: one finding,
    the right pattern, features with their HU in the JSON, no class probabilities; one phase alone judges no
    arterial feature."""
    studies = _two_phase_folders(tmp_path, KINDS, seed=3)
    for kind, folders in studies.items():
        result = task.predict(folders, "default", window="abdomen", phases=["arterial", "portal-venous"])
        assert len(result["findings"]) == 1, (kind, [f["evidence"]["verdict"] for f in result["findings"]])
        finding = result["findings"][0]
        assert finding["evidence"]["pattern"] == kind, (kind, finding["evidence"]["verdict"], finding["features"])
        assert set(finding["phases"]) == {"arterial", "portal-venous"}
        assert all(set(f) == {"name", "present", "hu", "reason"} for f in finding["features"])
        assert result["patient"]["probabilities"] is None
    single = task.predict(studies["MET"][1:], "default", window="abdomen", phases=["portal-venous"])
    feats = {f["name"]: f for f in single["findings"][0]["features"]}
    for name in ("aphe", "washout", "rim_enhancement", "peripheral_nodular_enhancement"):
        assert feats[name]["present"] is None and "arterial" in feats[name]["reason"]
    assert single["findings"][0]["evidence"]["pattern"] is None


def test_aphe_on_an_arterial_phase_alone_is_not_called_benign_fnh():
    """One arterial series with a bright lesion read 'benign pattern (FNH): aphe' although washout (which would
    make it HCC) could not be judged without a later phase."""
    feats = features({"arterial": _measure("arterial", 150, 150, 150, 90)})
    by = {f.name: f for f in feats}
    assert by["aphe"].present is True and by["washout"].present is None
    ev = evidence(feats)
    assert ev.pattern is None and ev.group is None
    assert ev.verdict.startswith("indeterminate: FNH features present (aphe) but washout") and "not judged" in ev.verdict
    assert ev.as_dict()["rules"].startswith("rule-table-")  # the JSON says which rule table judged it


def test_a_named_phase_the_vessels_contradict_is_warned(ircadb_folder, tmp_path):
    """Real portal-venous IRCADb slices (copied to a temporary folder only) named arterial (by the user here;
    a SeriesDescription 'ARTERIAL' did the same) were characterised as arterial without a word."""
    from ct_liver_helpers import ircadb_rows

    from lesiondx.ct_liver.phases import PhaseCall, contradiction

    rows = ircadb_rows(ircadb_folder, inside=True, n=12, pick="median")
    (tmp_path / "series").mkdir()
    for rel in rows["image"]:
        shutil.copy(ircadb_folder / rel, tmp_path / "series" / rel.split("/")[-1])
    result = task.predict([tmp_path / "series"], "default", phases=["arterial"])
    assert result["studies"][0]["phase"] == "arterial"
    assert any(w.startswith("series: phase arterial (named by the user) but the vessels look portal-venous")
               for w in result["input_warnings"]), result["input_warnings"]
    venous = VesselLevels(180.0, 160.0)
    assert contradiction(PhaseCall("delayed", "dicom-tags", ""), venous) is None  # too soft a line to argue
    assert contradiction(PhaseCall("portal-venous", "enhancement", ""), venous) is None
    assert "look non-contrast" in contradiction(PhaseCall("arterial", "dicom-tags", ""), VesselLevels(40.0, 42.0))
