"""lesiondx predict without --json: one screen per task in words (was a Python dict dump of up to ~1,900 lines),
with the gate's flags and caveats; the bundled examples through the CLI, SYNTHETIC result dicts for the shapes."""

from __future__ import annotations

from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.predict_summary import MAX_FINDINGS, summary_lines
from lesiondx_testdata import EXAMPLES


def test_cli_prints_a_short_summary_per_frame_and_per_patient():
    us = CliRunner().invoke(app, ["predict", "--task", "us-liver", str(EXAMPLES / "aul_liver_us_mini" / "images" / "benign_001.jpg")])
    assert us.exit_code == 0 and len(us.output.splitlines()) <= 4, us.output
    assert "benign_001.jpg: malignant, P(malignant) 0.72" in us.output and "{" not in us.output
    ct = CliRunner().invoke(app, ["predict", "--task", "ct-covid", str(EXAMPLES / "covid_ct_md_mini" / "series" / "P002")])
    assert ct.exit_code == 0 and "patient: not assessable (incomplete series)" in ct.output
    assert "FLAGGED" in ct.output and "caveat:" in ct.output and "{" not in ct.output


def test_shapes_of_the_three_tasks():
    """SYNTHETIC result dicts: a frame without a lesion, a positive patient, a long list of liver findings."""
    frame = {"results": [{"image": "/x/a.png", "label": "no focal lesion found", "probability": None, "p_lesion": 0.2,
                          "no_lesion_threshold": 0.94, "out_of_scope_flag": True,
                          "gate": {"reasons": ["frame smaller than every training frame"]}}]}
    lines = summary_lines("us-liver", frame)
    assert lines[1] == "a.png: no focal lesion found (P(lesion) 0.200 < 0.940)"
    assert "frame smaller than every training frame" in lines[2]
    covid = {"n_slices": 133, "slices": [{"boxes": [1]}, {"boxes": []}],
             "patient": {"decision": 1, "score": 0.99, "location": "left lung, lower zone", "rule": {"k_consecutive": 5}}}
    assert summary_lines("ct-covid", covid)[1].startswith("patient: COVID-19 pneumonia, score 0.990 over 133 slices, left lung")
    findings = [{"id": i, "slices": [i, i + 2], "evidence": {"pattern": "cyst", "benign_malignant": "benign"}}
                for i in range(MAX_FINDINGS + 3)]
    liver = summary_lines("ct-liver", {"findings": findings, "patient": {"n_inside_liver": 30, "phases": ["arterial"]}})
    assert "benign pattern (cyst)" in liver[2] and liver[-2] == "  … and 3 more (--json)"


def test_predict_names_the_folder_its_overlays_went_to(tmp_path):
    """'1 overlay image(s) written' did not say where."""
    image = EXAMPLES / "aul_liver_us_mini" / "images" / "benign_001.jpg"
    result = CliRunner().invoke(app, ["predict", "--task", "us-liver", str(image), "--out", str(tmp_path / "ov")])
    assert result.exit_code == 0, result.output
    assert f"1 overlay image(s) written to {tmp_path / 'ov'}/" in result.output


def test_train_and_evaluate_say_what_they_wrote_and_what_comes_next(tmp_path, monkeypatch):
    """train said only 'run written to RUN' (no files, no cross-validated AUC, no next step); evaluate 'wrote DIR/
    (metrics.json; …)' without predictions.csv or report.html. The run here is a SYNTHETIC stand-in."""
    from lesiondx import tasks

    run = tmp_path / "run"

    class FakeTask:
        def train(self, data, out, config, skip_bad=False):
            out.mkdir()
            (out / "us_liver.pt").write_bytes(b"")
            (out / "summary.json").write_text('{"oof_auc": 0.75, "oof_auc_ci": [0.6, 0.9], "n": 24}')
            return out

        def evaluate(self, model, data, out, strict=False):
            out.mkdir()
            for name in ("predictions.csv", "metrics.json", "report.html"):
                (out / name).write_text("")
            return {"summary": ["per image: n 20"]}

    monkeypatch.setattr(tasks, "load_task", lambda task: FakeTask())
    trained = CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(tmp_path), "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    lines = trained.output.splitlines()
    assert lines[0] == f"run written to {run}/: summary.json, us_liver.pt"
    assert "out-of-fold AUC on the training folder 0.750 (95% CI 0.600 – 0.900, n 24;" in lines[1] and "not a test" in lines[1]
    assert lines[2].startswith(f"next: lesiondx evaluate --task us-liver --model {run} --data FOLDER --out DIR")
    evaluated = CliRunner().invoke(app, ["evaluate", "--task", "us-liver", "--model", str(run), "--data", str(tmp_path),
                                         "--out", str(tmp_path / "ev")])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"wrote {tmp_path / 'ev'}/: metrics.json, predictions.csv, report.html" in evaluated.output
    assert f"open {tmp_path / 'ev' / 'report.html'} in a browser" in evaluated.output


def test_evaluate_points_at_the_report_where_it_was_written(tmp_path):
    """ct-covid writes its per-slice report to report/report.html: 'open DIR/report.html' named a file that is not there."""
    from lesiondx.predict_summary import evaluate_lines

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.html").write_text("")
    (tmp_path / "predictions.csv").write_text("")
    lines = evaluate_lines(tmp_path)
    assert lines[0] == f"wrote {tmp_path}/: predictions.csv, report/"
    assert lines[1].startswith(f"open {tmp_path / 'report' / 'report.html'} in a browser")
    assert "redoes the figures" in lines[1]
    (tmp_path / "predictions.csv").unlink()  # ct-liver detection on IRCADb writes metrics.json only
    assert "predictions.csv" not in evaluate_lines(tmp_path)[1]


def test_us_frame_says_size_distance_and_an_off_lesion_heat_map():
    """SYNTHETIC entries: the size dict us-liver writes (was expected as a list, so never printed), the OOD distance of
    an in-distribution frame (also on 'no focal lesion', measured on the best candidate region), the heat map's peak
    outside the ROI."""
    scored = {"image": "a.dcm", "label": "benign", "probability": 0.2, "threshold": 0.5, "roi_source": "proposed",
              "lesion_size_mm": {"width_mm": 21.0, "height_mm": 14.5}, "ood": {"score": 4.2, "threshold": 10.12},
              "heatmap_peak": {"x": 3, "y": 4, "inside_roi": False, "note": "heat map's peak lies outside the ROI"}}
    lines = summary_lines("us-liver", {"results": [scored]})
    assert lines[1].endswith(", lesion 21 × 14 mm") or lines[1].endswith(", lesion 21 × 15 mm")
    assert lines[2] == "  distance to the training frames 4.2 (flagged above 10.1)"
    assert lines[3] == "  note: the heat map's peak lies outside the ROI"
    empty = {"image": "n.png", "label": "no focal lesion found", "probability": None, "p_lesion": 0.1,
             "no_lesion_threshold": 0.9, "ood": {"score": 5.0, "threshold": 10.12}}
    assert "best candidate region" in summary_lines("us-liver", {"results": [empty]})[2]
