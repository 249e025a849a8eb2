"""lesiondx.data.badrows: rows whose files cannot be used, excluded from an evaluation or stopping training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from lesiondx.data import BadRowsError, ManifestError, check_training_rows, load_manifest, no_rows_left, screen_rows
from lesiondx.data.badrows import list_files
from lesiondx.io import ImageReadError, read_image
from lesiondx_testdata import EXAMPLES, corrupted_copy

MINI = EXAMPLES / "aul_liver_us_mini"


@pytest.fixture
def bad_folder(tmp_path) -> tuple[Path, str]:
    if not (MINI / "labels.csv").is_file():
        pytest.skip(f"example folder {MINI} missing")
    return corrupted_copy(MINI, tmp_path / "bad", "benign_010")


def test_training_check_names_every_bad_file_or_skips_them(bad_folder, tmp_path):
    folder, rel = bad_folder
    (folder / "masks" / "liver" / "malignant_020.png").write_bytes(b"")
    manifest = load_manifest(folder)
    with pytest.raises(BadRowsError) as caught:
        check_training_rows(manifest)
    message = str(caught.value)
    assert message.startswith(f"{folder.resolve() / 'labels.csv'}: 2 of 7 rows have files that cannot be used")
    assert f"{rel}: not a readable image" in message and "masks/liver/malignant_020.png: file is empty" in message
    assert [b.row for b in caught.value.bad] == [3, 6]  # labels.csv lines (header = 1)
    kept = check_training_rows(manifest, skip_bad=True, run_dir=tmp_path / "run")
    assert sorted(kept.frame["image_id"]) == ["benign_001", "benign_020", "malignant_010", "malignant_030", "normal_002"]
    skipped = pd.read_csv(tmp_path / "run" / "skipped_rows.csv")
    assert list(skipped["image_id"]) == ["benign_010", "malignant_020"] and list(skipped["file"])[0] == rel


def test_training_check_stops_on_missing_files_naming_labels_csv_or_skips_them_with_skip_bad(tmp_path):
    """ALTERED copy of the example folder with one image and one mask file deleted: without --skip-bad nothing is
    trained and each missing file is named with its row; with it both rows are left out and listed, like an
    unreadable file (README: --skip-bad trains on the rest)."""
    folder = tmp_path / "data"
    shutil.copytree(MINI, folder)
    (folder / "images" / "benign_020.jpg").unlink()
    (folder / "masks" / "liver" / "malignant_020.png").unlink()
    with pytest.raises(ManifestError, match=r"labels.csv: 1 image file\(s\) missing: row 4 images/benign_020.jpg"
                                            r"; 1 liver_mask file\(s\) missing: row 6 masks/liver/malignant_020.png "
                                            r"\(put the files there, .*, or --skip-bad to train on the rest\)"):
        check_training_rows(load_manifest(folder))
    kept = check_training_rows(load_manifest(folder), skip_bad=True, run_dir=tmp_path / "run")
    assert "benign_020" not in set(kept.frame["image_id"]) and "malignant_020" not in set(kept.frame["image_id"])
    assert len(kept) == 5
    skipped = pd.read_csv(tmp_path / "run" / "skipped_rows.csv")
    assert skipped.to_dict("records") == [
        {"image_id": "benign_020", "file": "images/benign_020.jpg", "reason": "file not found", "row": 4},
        {"image_id": "malignant_020", "file": "masks/liver/malignant_020.png", "reason": "file not found", "row": 6}]


def test_list_files_names_twenty_then_counts():
    from lesiondx.data import BadRow

    bad = [BadRow(str(i), f"images/{i}.png", "file is empty") for i in range(23)]
    text = list_files(bad)
    assert text.count("file is empty") == 20 and text.endswith("; and 3 more")


def test_screen_rows_excludes_failing_rows_and_whole_refused_groups(bad_folder):
    folder, rel = bad_folder
    manifest = load_manifest(folder)

    def refuse_benign(rows: pd.DataFrame) -> None:
        if (rows["label"] == "benign").all():
            raise ImageReadError(Path(rows["image"].iloc[0]).parent, "refused for task test: benign group")

    screened = screen_rows(manifest, lambda row: read_image(row["image"]))
    assert [b.to_dict()["file"] for b in screened.excluded] == [rel] and len(screened.manifest) == 6
    assert screened.fields()["n_excluded"] == 1 and screened.headline == "1 of 7 rows excluded (unreadable/refused)"
    grouped = screen_rows(manifest, lambda row: read_image(row["image"]), group_by="label", check_group=refuse_benign)
    assert [b.image_id for b in grouped.excluded] == ["benign_001", "benign_010", "benign_020"]
    assert grouped.excluded[0].file == "images" and "benign group" in grouped.excluded[0].reason
    with pytest.raises(ImageReadError, match="benign_010.jpg"):
        screen_rows(manifest, lambda row: read_image(row["image"]), strict=True)
    assert no_rows_left(screened) is None
    nothing = screen_rows(manifest.subset(manifest.frame["image_id"] == "benign_010"), lambda row: read_image(row["image"]))
    assert "all 1 rows excluded (unreadable/refused)" in no_rows_left(nothing)


def test_a_folder_of_another_tasks_layout_is_refused_by_train_and_evaluate_in_one_line(tmp_path):
    """A chest-CT (CT-MD) folder given to us-liver used to get as far as 'cannot make 5 folds from 2 patients' (with
    more patients it would have trained an ultrasound model on CT slices); an AUL folder given to ct-covid evaluate
    said 'column slice_index is required'. ct-liver still reads AUL (its classifier learns from ultrasound crops)."""
    from typer.testing import CliRunner

    from lesiondx.cli import app
    from lesiondx.data import require_task_layout

    ct_md, aul = EXAMPLES / "covid_ct_md_mini", MINI
    for folder in (ct_md, aul):
        if not (folder / "labels.csv").is_file():
            pytest.skip(f"example folder {folder} missing")
    with pytest.raises(ManifestError, match=r"labels.csv: this is a covid_ct_md folder \(CT, read by task ct-covid\), "
                                            r"not one task us-liver reads; use --task ct-covid"):
        require_task_layout(load_manifest(ct_md), "us-liver")
    require_task_layout(load_manifest(aul), "ct-liver", also=("us-liver",))
    require_task_layout(load_manifest(aul), "us-liver")
    runs = [CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(ct_md), "--out", str(tmp_path / "r")]),
            CliRunner().invoke(app, ["evaluate", "--task", "ct-covid", "--data", str(aul), "--out", str(tmp_path / "e")])]
    for run, owner in zip(runs, ("ct-covid", "us-liver")):
        assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1, run.output
        assert f"use --task {owner}" in run.output and "Traceback" not in run.output
    assert not (tmp_path / "r").exists()
