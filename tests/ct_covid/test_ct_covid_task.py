import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesiondx.ct_covid import task
from lesiondx.ct_covid.evaluation import incomplete_negative
from lesiondx.ct_covid.model import default_model_dir
from lesiondx.data import Box, quadrant


def test_predict_series_end_to_end(tiny_run, mini_folder, tmp_path):
    result = task.predict([mini_folder / "series" / "P002"], str(tiny_run), tmp_path / "overlays")
    json.dumps(result)  # the service stores it as JSON
    assert result["model_version"] == "tiny-untrained"
    assert result["is_hu"] and result["n_slices"] == 10
    assert [s["slice"] for s in result["slices"]] == list(range(10))
    assert result["patient"]["decision"] in (0, 1)
    assert 0.0 <= result["patient"]["score"] <= 1.0
    assert result["patient"]["rule"]["k_consecutive"] == 3
    with_boxes = [s for s in result["slices"] if s["boxes"]]
    assert len(result["overlays"]) == len(with_boxes)
    for path in result["overlays"]:
        with Image.open(path) as png:
            assert png.width == 512
    for s in with_boxes:
        assert 0.0 <= s["probability"] <= 1.0
        for found in s["boxes"]:
            x1, y1, x2, y2 = found["box"]
            assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
            assert found["image_quadrant"] == quadrant(Box(x1, y1, x2, y2), (512, 512))
            assert found["location"].split(",")[0] in ("left lung", "right lung", "lung")
    assert set(result["seconds"]) >= {"decode_s", "lung_field_s", "model_s"}


def _two_patient_folder(mini_folder: Path, tmp_path: Path) -> Path:
    """The 10 example slices as two 'patients' (labels invented for the test), rows shuffled."""
    frame = pd.read_csv(mini_folder / "labels.csv")
    shutil.copytree(mini_folder / "series", tmp_path / "series")
    frame["patient_id"] = np.where(frame["slice_index"] < 5, "A", "B")
    frame["label"] = np.where(frame["patient_id"] == "A", "Normal", "COVID-19")
    frame.loc[frame["patient_id"] == "A", "infection"] = 0
    frame.loc[frame["patient_id"] == "B", "slice_index"] -= 5
    frame.sample(frac=1.0, random_state=1).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def test_dicom_files_given_out_of_order_read_as_the_folder(tiny_run, mini_folder):
    """Several DICOM files are one series ordered by position with its spacing (the mm size floor applies),
    exactly as the folder they came from — not stacked in the order given without spacing."""
    files = sorted((mini_folder / "series" / "P002").glob("*.dcm"))
    shuffled = files[5:] + files[:5][::-1]
    from_files = task.predict(shuffled, str(tiny_run), None)
    from_folder = task.predict([mini_folder / "series" / "P002"], str(tiny_run), None)
    assert from_files["patient"]["rule"]["min_lesion_diameter_mm"] is not None
    assert from_files["slices"] == from_folder["slices"]
    assert from_files["patient"] == from_folder["patient"]


def test_evaluate_tiny_folder(tiny_run, mini_folder, tmp_path):
    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    metrics = task.evaluate(str(tiny_run), folder, tmp_path / "eval")
    slices = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    patients = pd.read_csv(tmp_path / "eval" / "patients.csv")
    assert list(slices.columns[:5]) == ["image_id", "patient_id", "slice_index", "truth", "score"]
    assert len(slices) == 10 and set(slices["patient_id"]) == {"A", "B"}
    for _, rows in slices.groupby("patient_id"):
        assert rows["slice_index"].tolist() == sorted(rows["slice_index"])  # ordered despite shuffled CSV
    assert dict(zip(patients["patient_id"], patients["truth"])) == {"A": 0, "B": 1}
    assert set(patients["decision"]) <= {0, 1}
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["slice"]["n"] == 10 and saved["slice"]["n_pos"] == 5
    assert saved["slice"]["auc"] is not None and len(saved["slice"]["auc_ci"]) == 2
    for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "threshold"):
        assert key in saved["slice"] and key in saved["patient"]
    assert saved["patient"]["auc"] is None and "2 positive" in saved["patient"]["auc_note"]
    assert metrics["model_version"] == "tiny-untrained"
    assert Path(saved["reports"]["report"]).is_file()
    assert slices["score"].between(0, 1).all()
    assert saved["patients"][0]["patient_id"] == "A" and saved["patients"][0]["n_slices"] == 5
    # `lesiondx report` on the same predictions.csv (settings file beside it) gives the same slice figures
    from lesiondx.stats.evaluation import read_settings, report_from_csv

    again = report_from_csv(tmp_path / "eval" / "predictions.csv", tmp_path / "again",
                            read_settings(tmp_path / "eval" / "predictions.csv")).metrics["image"]
    assert (again["auc"], again["auc_ci"], again["threshold"]) == (saved["slice"]["auc"], saved["slice"]["auc_ci"],
                                                                   saved["slice"]["threshold"])
    assert again["threshold_chosen_on_these_data"] is False and "ct-covid evaluation — per slice" in metrics["summary"]
    assert metrics["summary"][0].startswith("input gate flagged 2 of 2 series")  # the gate flags the 5-slice excerpts


def test_evaluate_decodes_each_slice_once(tiny_run, mini_folder, tmp_path, monkeypatch):
    """The row screen, the series gate and the scoring share one decode per slice (they used to make three)."""
    import lesiondx.io.dicom as dicom

    decodes = []
    real = dicom._decoded_pixels
    monkeypatch.setattr(dicom, "_decoded_pixels", lambda ds, path: decodes.append(Path(path).name) or real(ds, path))
    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    task.evaluate(str(tiny_run), folder, tmp_path / "eval")
    assert sorted(decodes) == sorted(p.name for p in (folder / "series" / "P002").glob("*.dcm"))
    assert len(pd.read_csv(tmp_path / "eval" / "predictions.csv")) == 10


def test_evaluate_header_only_labels_is_a_clear_error(tiny_run, tmp_path):
    (tmp_path / "labels.csv").write_text("image_id,patient_id,label,image,slice_index,infection\n")
    with pytest.raises(ValueError, match="labels.csv has no rows"):
        task.evaluate(str(tiny_run), tmp_path, tmp_path / "eval")


def test_evaluate_rejects_a_folder_without_slice_index(tiny_run, mini_folder, tmp_path):
    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    frame = pd.read_csv(folder / "labels.csv").drop(columns=["slice_index"])
    frame.to_csv(folder / "labels.csv", index=False)
    with pytest.raises(ValueError, match="labels.csv"):
        task.evaluate(str(tiny_run), folder, tmp_path / "eval")


def test_unknown_model_dir_is_a_clear_error(mini_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt"):
        task.predict([mini_folder / "series" / "P002"], str(tmp_path), None)


def test_train_tiny_model_on_real_medseg_slices(medseg_folder, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("input_size: 64\nepochs: 2\nbatch_size: 2\nmax_train_images: 6\nval_fraction: 0.34\n"
                      "encoder: efficientnet_lite0\nmin_area: 4\n")
    run = task.train(medseg_folder, tmp_path / "run", config)
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    assert history["val_dice"].between(0, 1).all()
    split = pd.read_csv(run / "split.csv")
    assert len(split) == 6 and set(split["split"]) == {"train", "val"}
    medseg = pd.read_csv(medseg_folder / "labels.csv")
    test_ids = set(medseg.loc[medseg["split"] == "test", "image_id"])
    assert not test_ids & set(split["image_id"]), "MedSeg test slices must never be trained on"
    result = task.predict([Path(__file__).resolve().parents[2] / "examples" / "covid_ct_md_mini" / "series" / "P002"],
                          str(run), None)
    assert result["n_slices"] == 10


def test_shipped_model_finds_the_infection_in_the_example_covid_series(mini_folder):
    """Lesions are found on infected slices only. The patient decision is a known miss (below): limited
    disease — 6 infected slices of a 10-slice excerpt, 4 of them with a lesion the candidate filter keeps — is
    under k = 5 of the shipped rule (issue 16 trade-off, models/ct-covid/MODEL_CARD.md)."""
    if not (default_model_dir() / "model.pt").is_file():
        pytest.skip("no shipped model in models/ct-covid")
    result = task.predict([mini_folder / "series" / "P002"], "default", None)
    labels = pd.read_csv(mini_folder / "labels.csv").sort_values("slice_index")
    with_box = {s["slice"] for s in result["slices"] if s["boxes"]}
    assert with_box and with_box <= set(labels.loc[labels["infection"] == 1, "slice_index"])
    infected = pd.read_csv(mini_folder / "labels.csv").sort_values("slice_index")["infection"].to_numpy()
    scores = np.array([s["probability"] for s in result["slices"]])
    assert scores[infected == 1].mean() > scores[infected == 0].mean()


@pytest.mark.xfail(strict=True, reason="known miss of the shipped rule (k = 5 after the candidate filter): limited "
                   "disease on 6 slices of a 10-slice excerpt; see models/ct-covid/MODEL_CARD.md, issue 16")
def test_shipped_model_calls_the_example_covid_excerpt_positive(mini_folder):
    if not (default_model_dir() / "model.pt").is_file():
        pytest.skip("no shipped model in models/ct-covid")
    assert task.predict([mini_folder / "series" / "P002"], "default", None)["patient"]["decision"] == 1


def test_a_negative_call_on_a_series_that_does_not_cover_the_lungs_is_not_assessable(mini_folder):
    """The shipped model calls the 10-slice excerpt negative (see the xfail above): lungs go on beyond both its ends,
    and with 3 middle slices removed slices are missing too; either way the negative call says it does not cover
    the rest instead of a plain 'normal'."""
    if not (default_model_dir() / "model.pt").is_file():
        pytest.skip("no shipped model in models/ct-covid")
    files = sorted((mini_folder / "series" / "P002").glob("*.dcm"))
    excerpt = task.predict(files, "default", None)
    gapped = task.predict(files[:4] + files[7:], "default", None)
    for result in (excerpt, gapped):
        assert result["patient"]["decision"] == 0 and result["patient"]["label"] == "not assessable (incomplete series)"
        assert result["out_of_scope_flag"] and "does not cover the lungs outside them" in result["patient"]["caveat"]
    assert "lungs go on beyond the first or last slice" in excerpt["patient"]["caveat"]
    assert "mm of the series is missing" in gapped["patient"]["caveat"]
    assert any("covers only part of the lungs" in r for r in excerpt["gate"]["reasons"])
    complete = SimpleNamespace(checks={"geometry": {"value": {}}, "lung_coverage": {"status": "ok"}})
    assert incomplete_negative(complete, 0) == {}
    assert incomplete_negative(SimpleNamespace(checks={"geometry": {"value": {"largest_gap_mm": 40.0}}}), 1) == {}


def test_evaluate_says_what_it_reads_and_each_series_it_scored(tiny_run, mini_folder, tmp_path, capsys):
    """A long run is not minutes of silence (was: nothing until the 10 % step of the patient loop after 10 s)."""
    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    metrics = task.evaluate(str(tiny_run), folder, tmp_path / "eval")
    err = " ".join(capsys.readouterr().err.split())
    assert "ct-covid: reading and checking 10 slices of 2 patients" in err, err
    for number, patient in enumerate(metrics["patients"], 1):
        decision = "positive" if patient["decision"] else "negative"
        assert (f"ct-covid: patient {number}/2 {patient['patient_id']}: 5 slices, {decision} "
                f"(score {patient['score']:.3f}, longest run {patient['run_length']})") in err, err


def test_evaluate_writes_an_overview_a_researcher_can_read(tiny_run, mini_folder, tmp_path):
    """report.html beside metrics.json: the command, the model and what it never saw, slice and patient metrics with
    CIs, the per-patient table and the slice-score figure, written although the patient report is not (1 patient per
    class); the ROC is a PNG of the per-slice report."""
    from PIL import Image

    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    metrics = task.evaluate(str(tiny_run), folder, tmp_path / "eval")
    out = tmp_path / "eval"
    assert metrics["command"] == (f"lesiondx evaluate --task ct-covid --model {tiny_run.resolve()} --data "
                                  f"{folder.resolve()} --out {out.resolve()}")
    assert metrics["engine"] in ("onnx", "torch") and metrics["overview"] == str(out / "report.html")
    html = (out / "report.html").read_text()
    assert metrics["command"] in html and "tiny-untrained" in html and "overlap not checked" in html
    assert "per slice" in html and "per patient" in html and "Wilson" in html
    assert 'href="report/report.html"' in html and "not written: per patient: need at least 2 positive" in html
    assert html.count("<tr") >= 2 + 2 + 3  # summary rows, the two levels, header + two patients
    for patient in metrics["patients"]:
        assert f"<td>{patient['patient_id']}</td>" in html and "run_slices" in patient and "gate_notes" in patient
    for png in ("slice_scores_per_patient.png", "report/roc_slice.png"):
        assert png in html
        with Image.open(out / png) as image:
            assert image.format == "PNG"


def test_stats_roc_on_evaluates_predictions_gives_its_auc(tiny_run, mini_folder, tmp_path):
    """The exported predictions.csv round-trips: `lesiondx stats roc` gives evaluate's slice AUC and DeLong CI."""
    from typer.testing import CliRunner

    from lesiondx.cli import app

    folder = _two_patient_folder(mini_folder, tmp_path / "data")
    metrics = task.evaluate(str(tiny_run), folder, tmp_path / "eval")
    res = CliRunner().invoke(app, ["stats", "roc", "--csv", str(tmp_path / "eval" / "predictions.csv"), "--label",
                                   "truth", "--positive", "1", "--score", "score", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)["scores"][0]
    assert [got["auc"], got["ci_low"], got["ci_high"]] == pytest.approx([metrics["slice"]["auc"], *metrics["slice"]["auc_ci"]])
    assert (got["n_pos"], got["n_neg"]) == (metrics["slice"]["n_pos"], metrics["slice"]["n_neg"])


def test_evaluate_on_a_mask_folder_records_the_command(tiny_run, medseg_excerpt, tmp_path):
    """A MedSeg-layout folder (4 real test slices copied) gets the Dice evaluation, with the command that redoes it
    (was: no command in its metrics.json) and a plot of Dice per slice against infection size."""
    data, _ = medseg_excerpt("test", 4)
    metrics = task.evaluate(str(tiny_run), data, tmp_path / "eval")
    assert metrics["segmentation"]["n_slices"] == 4
    assert metrics["command"].endswith(f"--data {data.resolve()} --out {(tmp_path / 'eval').resolve()}")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["command"] == metrics["command"]
    with Image.open(tmp_path / "eval" / metrics["figures"]["dice"]) as png:  # was: no figure, numbers only
        assert png.format == "PNG"


def test_evaluate_says_which_negative_calls_predict_gives_as_not_assessable(mini_folder, tmp_path):
    """The bundled 10-slice excerpt: predict's negative call is 'not assessable (incomplete series)'; evaluate counts
    it as negative but says so per patient and in the summary (was: a plain negative, nothing said)."""
    predicted = task.predict([mini_folder / "series" / "P002"], "default", None)
    assert predicted["patient"]["decision"] == 0 and predicted["patient"]["label"] == "not assessable (incomplete series)"
    metrics = task.evaluate("default", mini_folder, tmp_path / "eval")
    assert metrics["patients"][0]["decision"] == 0
    assert metrics["patients"][0]["call_note"] == predicted["patient"]["label"]
    assert any(line.startswith("1 negative call(s) on series that do not cover the lungs") and "P002" in line
               for line in metrics["summary"]), metrics["summary"]
    assert "negative — not assessable (incomplete series)" in (tmp_path / "eval" / "report.html").read_text()
