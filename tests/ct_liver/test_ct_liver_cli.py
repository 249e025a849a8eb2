"""ct-liver CLI flags: --phase and --classifier on predict and evaluate (SYNTHETIC phantoms only)."""

import json

from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.ct_liver.synthetic import make_multiphase_folder

from test_ct_liver_characterise import _two_phase_folders


def _said(res) -> str:
    return " ".join(res.output.split())  # the console may wrap long lines


def test_predict_phase_and_classifier_flags_reach_the_pipeline(tmp_path):
    """SYNTHETIC two-phase HCC phantom: the phases named on the command line are the ones used (source
    'given'), and the default characterisation reports features, not probabilities."""
    arterial, portal = _two_phase_folders(tmp_path, ["HCC"], seed=3)["HCC"]
    res = CliRunner().invoke(app, ["predict", "--task", "ct-liver", str(portal), str(arterial), "--window", "abdomen",
                                   "--phase", "portal-venous", "--phase", "arterial", "--classifier", "features",
                                   "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert [(s["phase"], s["phase_source"]) for s in result["studies"]] == [("portal-venous", "given"),
                                                                           ("arterial", "given")]
    assert result["patient"]["probabilities"] is None and result["findings"]
    assert result["findings"][0]["evidence"]["pattern"] == "HCC"
    stages = result["stage_seconds"]  # per-stage wall time (BENCHMARKS.md ct-liver 3b)
    assert set(stages) == {"decode", "phases", "liver", "candidates", "outputs", "alignment", "characterisation",
                           "total", "other"}
    named = sum(v for k, v in stages.items() if k not in ("total", "other"))
    assert all(v >= 0 for v in stages.values()) and named <= stages["total"] + 0.05 and stages["decode"] > 0
    one = CliRunner().invoke(app, ["predict", "--task", "ct-liver", str(portal), "--window", "abdomen", "--json"])
    assert one.exit_code == 0 and json.loads(one.output)["studies"][0]["phase_source"] != "given"


def test_bad_phase_and_classifier_values_are_one_clear_line(tmp_path):
    arterial, portal = _two_phase_folders(tmp_path, ["MET"], seed=1)["MET"]
    runner = CliRunner()
    res = runner.invoke(app, ["predict", "--task", "ct-liver", str(portal), "--phase", "venous"])
    assert res.exit_code == 2 and "unknown phase 'venous'" in _said(res) and "portal-venous" in _said(res)
    res = runner.invoke(app, ["predict", "--task", "ct-liver", str(portal), "--phase", "arterial", "--phase", "delayed"])
    assert res.exit_code == 2 and "2 phases given for 1 input" in _said(res)
    res = runner.invoke(app, ["predict", "--task", "ct-liver", str(portal), "--classifier", "svm"])
    assert res.exit_code == 2 and "classifier must be 'features' or 'lilnet'" in _said(res)
    for flag, value in (("--phase", "arterial"), ("--classifier", "lilnet")):
        res = runner.invoke(app, ["predict", "--task", "us-liver", str(portal), flag, value])
        assert res.exit_code == 2 and f"{flag} applies to --task ct-liver only" in _said(res)
    assert "Traceback" not in res.output


def test_evaluate_classifier_flag(tmp_path):
    """A SYNTHETIC lesion-type folder is scored by class probabilities: 'features' (none) is refused with a
    reason, an unknown name too; --classifier is ct-liver only."""
    data = make_multiphase_folder(tmp_path / "data", kinds=["HCC", "cyst"], patients_per_kind=1, slices=2, size=64, seed=0)
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--task", "ct-liver", "--data", str(data), "--out", str(tmp_path / "a"),
                              "--classifier", "features"])
    assert res.exit_code == 2 and "gives none" in _said(res) and "lilnet" in _said(res)
    res = runner.invoke(app, ["evaluate", "--task", "ct-liver", "--data", str(data), "--out", str(tmp_path / "b"),
                              "--classifier", "forest"])
    assert res.exit_code == 2 and "classifier must be" in _said(res)
    res = runner.invoke(app, ["evaluate", "--task", "ct-covid", "--data", str(data), "--out", str(tmp_path / "c"),
                              "--classifier", "lilnet"])
    assert res.exit_code == 2 and "--classifier applies to --task ct-liver only" in _said(res)
