"""A corrupt DICOM slice in the CT-MD example series (real data): evaluate leaves that slice out, names it,
and reports what a folder without that row gives; --strict stops at it; train on MedSeg slices with a corrupt
image names it and trains nothing, or with --skip-bad trains on the rest and lists it in the run."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.ct_covid import task
from lesiondx.data import BadRowsError
from lesiondx.io import ImageReadError
from lesiondx_testdata import corrupted_copy


def test_evaluate_excludes_the_corrupt_slice_and_scores_the_rest(tiny_run, mini_folder, tmp_path):
    bad, rel = corrupted_copy(mini_folder, tmp_path / "bad", "P002_022")
    clean, _ = corrupted_copy(mini_folder, tmp_path / "clean", "P002_022", drop=True)
    with_bad = task.evaluate(str(tiny_run), bad, tmp_path / "e_bad")
    without = task.evaluate(str(tiny_run), clean, tmp_path / "e_clean")
    assert [(e["image_id"], e["file"]) for e in with_bad["excluded"]] == [("P002_022", rel)]
    assert with_bad["excluded"][0]["reason"] and with_bad["n_excluded"] == 1 and without["n_excluded"] == 0
    assert with_bad["summary"][0] == "1 of 10 rows excluded (unreadable/refused)"
    for section in ("slice", "patient", "patients", "n_slices", "n_patients"):
        assert with_bad[section] == without[section], section
    assert with_bad["n_slices"] == 9
    assert "1 of 10 rows excluded" in (tmp_path / "e_bad" / "report" / "report.html").read_text()
    with pytest.raises(ImageReadError, match="IM0023.dcm"):
        task.evaluate(str(tiny_run), bad, tmp_path / "e_strict", strict=True)


def test_train_lists_the_corrupt_slice_and_trains_nothing_or_skips_it(medseg_excerpt, tmp_path):
    data, frame = medseg_excerpt("train", 5)
    broken = frame["image"].iloc[1]
    (data / broken).write_bytes(b"\xff\xd8 not really a jpeg")
    config = tmp_path / "tiny.yaml"
    config.write_text("input_size: 64\nepochs: 1\nbatch_size: 2\nval_fraction: 0.34\nencoder: efficientnet_lite0\n"
                      "min_area: 4\n")
    with pytest.raises(BadRowsError, match="nothing was trained") as caught:
        task.train(data, tmp_path / "run", config)
    assert [b.file for b in caught.value.bad] == [broken]
    assert not (tmp_path / "run").exists()
    res = CliRunner().invoke(app, ["train", "--task", "ct-covid", "--data", str(data), "--out", str(tmp_path / "run"),
                                   "--config", str(config), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert f"rows skipped, listed in {tmp_path / 'run' / 'skipped_rows.csv'}" in " ".join(res.output.split())
    skipped = pd.read_csv(tmp_path / "run" / "skipped_rows.csv")
    assert list(skipped["file"]) == [broken] and list(skipped["image_id"]) == [frame["image_id"].iloc[1]]
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert len(split) == 4 and frame["image_id"].iloc[1] not in set(split["image_id"])
    assert (tmp_path / "run" / "model.pt").is_file()


def _with_bad_patients(mini_folder, folder):
    """ALTERED copy of the example folder plus a patient GONE whose series file is missing and a patient SCOUT whose
    'series' is one localizer image (a copy of an example slice re-tagged as a coronal topogram)."""
    import pydicom

    shutil.copytree(mini_folder, folder)
    frame = pd.read_csv(folder / "labels.csv", dtype=str, keep_default_na=False)
    ds = pydicom.dcmread(folder / frame["image"].iloc[0])
    ds.ImageType, ds.SeriesDescription = ["ORIGINAL", "PRIMARY", "LOCALIZER"], "Topogram 0.6 T20f"
    ds.ImageOrientationPatient, ds.SeriesInstanceUID = [1, 0, 0, 0, 0, -1], pydicom.uid.generate_uid()
    (folder / "series" / "SCOUT").mkdir()
    ds.save_as(folder / "series" / "SCOUT" / "ALTERED_scout.dcm")
    first = frame.iloc[0].to_dict()
    extra = [{**first, "image_id": "GONE_000", "patient_id": "GONE", "image": "series/GONE/IM0001.dcm"},
             {**first, "image_id": "SCOUT_000", "patient_id": "SCOUT", "image": "series/SCOUT/ALTERED_scout.dcm"}]
    pd.concat([frame, pd.DataFrame(extra)]).to_csv(folder / "labels.csv", index=False)
    return folder


def test_evaluate_lists_a_missing_series_and_a_scout_and_scores_the_rest(tiny_run, mini_folder, tmp_path):
    data = _with_bad_patients(mini_folder, tmp_path / "data")
    # was: the whole evaluation stopped at the missing file ("1 image file(s) missing")
    res = CliRunner().invoke(app, ["evaluate", "--task", "ct-covid", "--model", str(tiny_run), "--data", str(data),
                                   "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    excluded = {e["image_id"]: e for e in saved["excluded"]}
    assert set(excluded) == {"GONE_000", "SCOUT_000"} and saved["n_slices"] == 10
    assert excluded["GONE_000"]["file"] == "series/GONE/IM0001.dcm" and "does not exist" in excluded["GONE_000"]["reason"]
    assert "refused" in excluded["SCOUT_000"]["reason"] and "not axial" in excluded["SCOUT_000"]["reason"]
    assert "excluded series/GONE/IM0001.dcm: file does not exist" in " ".join(res.output.split())
    with pytest.raises(Exception, match="missing"):  # --strict stops at the missing file, as before
        task.evaluate(str(tiny_run), data, tmp_path / "strict", strict=True)


def test_evaluate_with_nothing_readable_fails_in_one_line(tiny_run, mini_folder, tmp_path):
    data = _with_bad_patients(mini_folder, tmp_path / "data")
    frame = pd.read_csv(data / "labels.csv")
    frame[frame["patient_id"].isin(["GONE", "SCOUT"])].to_csv(data / "labels.csv", index=False)
    res = CliRunner().invoke(app, ["evaluate", "--task", "ct-covid", "--model", str(tiny_run), "--data", str(data),
                                   "--out", str(tmp_path / "eval")])
    assert res.exit_code == 2 and "all 2 rows excluded" in " ".join(res.output.split()), res.output


def test_a_scout_listed_among_a_patients_slices_is_excluded_and_named(tiny_run, mini_folder, tmp_path):
    """ALTERED copy: one example slice re-tagged as a localizer and listed as an 11th slice of P002."""
    import pydicom

    data = tmp_path / "data"
    shutil.copytree(mini_folder, data)
    frame = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    ds = pydicom.dcmread(data / frame["image"].iloc[0])
    ds.ImageType, ds.SOPInstanceUID = ["ORIGINAL", "PRIMARY", "LOCALIZER"], pydicom.uid.generate_uid()
    ds.save_as(data / "series" / "P002" / "ALTERED_scout.dcm")
    scout = {**frame.iloc[-1].to_dict(), "image_id": "P002_scout", "image": "series/P002/ALTERED_scout.dcm",
             "slice_index": "10"}
    pd.concat([frame, pd.DataFrame([scout])]).to_csv(data / "labels.csv", index=False)
    metrics = task.evaluate(str(tiny_run), data, tmp_path / "eval")
    # was: scored as an 11th slice (before evaluate read series as predict does), then silently left out
    assert [(e["image_id"], e["file"]) for e in metrics["excluded"]] == [("P002_scout", "series/P002/ALTERED_scout.dcm")]
    assert "localizer" in metrics["excluded"][0]["reason"] and "1 of 11 rows excluded (unreadable/refused)" in metrics["summary"]
    assert metrics["n_slices"] == 10 and "P002_scout" not in set(pd.read_csv(tmp_path / "eval" / "predictions.csv")["image_id"])
