"""A corrupt DICOM slice in the CT-MD example series (real data): evaluate leaves that slice out, names it,
and reports what a folder without that row gives; --strict stops at it; train on MedSeg slices with a corrupt
image names it and trains nothing, or with --skip-bad trains on the rest and lists it in the run."""

from __future__ import annotations

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


def test_train_lists_the_corrupt_slice_and_trains_nothing_or_skips_it(medseg_folder, tmp_path):
    frame = pd.read_csv(medseg_folder / "labels.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["split"] == "train"].head(5)
    data = tmp_path / "medseg"
    for rel in [*frame["image"], *frame["infection_mask"]]:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(medseg_folder / rel, data / rel)
    frame.to_csv(data / "labels.csv", index=False)
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
