"""``data summary`` on junk folders (generated here, SYNTHETIC): unreadable files, paths outside the folder,
unknown labels, empty tables and missing columns are reported, and the CLI exits with code 2 on problems."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.data import ManifestError, load_manifest, summarise_folder
from lesiondx.data.summary import known_labels

from lesiondx_testdata import EXAMPLES


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 120, np.uint8)).save(path)
    return path


def _folder(root: Path, rows: str, header: str = "image_id,patient_id,label,image") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text(header + "\n" + rows)
    return root


def _cli(*args: str):
    result = CliRunner().invoke(app, ["data", "summary", *args])
    return result, result.output


def test_random_bytes_named_png_and_truncated_png_are_unreadable(tmp_path):
    folder = _folder(tmp_path / "d", "a,p1,benign,img/a.png\nb,p2,malignant,img/b.png\nc,p3,benign,img/c.png\n"
                                     "d,p4,benign,img/d.dcm\n")
    _png(folder / "img/a.png")
    (folder / "img/b.png").write_bytes(os.urandom(3000))
    good = (folder / "img/a.png").read_bytes()
    (folder / "img/c.png").write_bytes(good[: len(good) - 20])  # truncated: CRC/IEND missing
    (folder / "img/d.dcm").write_text("LICENSE: this is a text file")
    summary = summarise_folder(folder)
    unreadable = [p for p in summary.problems if "unreadable" in p]
    assert len(unreadable) == 1 and unreadable[0].startswith("3 image file(s) unreadable (first: row 3, img/b.png")
    result, output = _cli(str(folder))
    assert result.exit_code == 2 and "3 image file(s) unreadable" in output and "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith(f"error: {folder.resolve()}: 1 problem(s)")


def test_masks_are_opened_too(tmp_path):
    folder = _folder(tmp_path / "m", "a,p1,benign,a.png,m.png\n", header="image_id,patient_id,label,image,lesion_mask")
    _png(folder / "a.png")
    (folder / "m.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    assert any(p.startswith("1 lesion_mask file(s) unreadable") for p in summarise_folder(folder).problems)


@pytest.mark.parametrize("path", ["../outside.png", "/etc/hostname", "img/../../outside.png"])
def test_paths_outside_the_folder_are_refused(tmp_path, path):
    _png(tmp_path / "outside.png")
    folder = _folder(tmp_path / "d", f"a,p1,benign,{path}\n")
    summary = summarise_folder(folder)
    assert any("outside the dataset folder" in p and "row 2" in p for p in summary.problems)
    assert not any("unreadable" in p or "missing" in p for p in summary.problems)  # never opened
    with pytest.raises(ManifestError, match="row 2, column 'image': path outside the dataset folder"):
        load_manifest(folder)  # train / evaluate refuse it outright
    assert _cli(str(folder))[0].exit_code == 2


def test_inside_paths_and_symlinks_inside_are_fine(tmp_path):
    folder = _folder(tmp_path / "d", "a,p1,benign,img/./a.png\n")
    _png(tmp_path / "elsewhere/a.png")
    (folder / "img").symlink_to(tmp_path / "elsewhere")
    summary = summarise_folder(folder, task="us-liver")
    assert summary.problems == [] and summary.warnings == []


def test_unknown_labels_are_a_problem_where_train_refuses_them_and_a_warning_for_ct_covid(tmp_path):
    folder = _folder(tmp_path / "d", "a,p1,benign,a.png\nb,p2,COVID-19,b.png\nc,p3,Bening,c.png\n")
    for name in "abc":
        _png(folder / f"{name}.png")
    summary = summarise_folder(folder, task="us-liver")  # us-liver train/evaluate stop on these labels
    assert summary.warnings == [] and len(summary.problems) == 1
    problem = summary.problems[0]
    assert "labels.csv, row 3, column 'label': 2 row(s)" in problem and "'Bening'" in problem and "'COVID-19'" in problem
    assert "train and evaluate --task us-liver refuse them" in problem
    result, _ = _cli(str(folder), "--task", "us-liver")
    assert result.exit_code == 2 and "refuse them" in result.output
    assert summarise_folder(folder, task="ct-liver").problems  # ct-liver refuses 'COVID-19' too
    assert summarise_folder(folder).warnings == []  # generic layout, no task: nothing to compare with
    result, output = _cli(str(folder), "--task", "ct-covid", "--json")
    warning = json.loads(output)["warnings"][0]
    assert result.exit_code == 0 and "'benign'" in warning and "count them as negative" in warning  # ct-covid trains
    assert {"benign", "malignant", "normal"} <= known_labels("us-liver")
    assert {"COVID-19", "Normal"} <= known_labels("ct-covid") and {"liver lesion", "HCC"} <= known_labels("ct-liver")
    assert _cli(str(folder), "--task", "nope")[0].exit_code == 2


def test_empty_table_and_missing_columns_are_problems(tmp_path):
    empty = _folder(tmp_path / "empty", "")
    summary = summarise_folder(empty)
    assert summary.n_images == 0 and summary.problems == [f"{empty.resolve()}: labels.csv has no rows (a header only)"]
    result, output = _cli(str(empty), "--json")
    assert result.exit_code == 2 and "no rows" in output and "Traceback" not in output
    nolabel = _folder(tmp_path / "nolabel", "a,p1,a.png\n", header="image_id,patient_id,image")
    assert "column 'label': required column missing" in summarise_folder(nolabel).problems[0]
    assert _cli(str(nolabel))[0].exit_code == 2


def test_shipped_examples_have_no_problems():
    for name in ("aul_liver_us_mini", "covid_ct_md_mini"):
        result, output = _cli(str(EXAMPLES / name), "--json")
        assert result.exit_code == 0, output
        summary = json.loads(output)
        assert summary["problems"] == [] and summary["warnings"] == [] and summary["task"] in ("us-liver", "ct-covid")


def test_summary_lists_every_duplicate_id_beside_the_other_problems(tmp_path):
    """Was: the first duplicate image_id was the only problem reported (layout unknown, 0 images), so a site fixed
    one problem per run; now every duplicate (with its row), the missing file and the repeated image come at once,
    and train still stops at the first duplicate."""
    for name in ("a", "b", "c"):
        _png(tmp_path / "images" / f"{name}.png")
    folder = _folder(tmp_path, "a,p1,benign,images/a.png\nb,p2,malignant,images/b.png\na,p3,benign,images/c.png\n"
                               "b,p4,malignant,images/gone.png\nc,p5,benign,images/c.png\n")
    summary = summarise_folder(folder)
    assert summary.n_images == 5
    assert any("2 duplicate image_id(s): row 4 'a', row 5 'b'" in p for p in summary.problems)
    assert any("1 image file(s) missing: row 5 images/gone.png" in p for p in summary.problems)
    assert any("row 6, column 'image': images/c.png is listed twice" in p for p in summary.problems)
    with pytest.raises(ManifestError, match="row 4, column 'image_id': duplicate image_id 'a'"):
        load_manifest(folder)
