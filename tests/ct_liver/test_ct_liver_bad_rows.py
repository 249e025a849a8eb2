"""A corrupt frame in the AUL example (real images) evaluated by the shipped ct-liver classifier: left out,
named, and the rest scored exactly as a folder without that row; --strict stops at it; train names it and
trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.ct_liver import task
from lesiondx.data import BadRowsError
from lesiondx_testdata import EXAMPLES, corrupted_copy

MINI = EXAMPLES / "aul_liver_us_mini"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path, str]:
    if not (MINI / "labels.csv").is_file():
        pytest.skip(f"example folder {MINI} missing")
    root = tmp_path_factory.mktemp("ctl_bad")
    bad, rel = corrupted_copy(MINI, root / "bad", "malignant_010", column="lesion_mask")
    clean, _ = corrupted_copy(MINI, root / "clean", "malignant_010", drop=True)
    return bad, clean, rel


def test_evaluate_excludes_the_row_with_a_corrupt_mask(folders, tmp_path):
    bad, clean, rel = folders
    with_bad = task.evaluate("default", bad, tmp_path / "bad", classifier="lilnet")
    without = task.evaluate("default", clean, tmp_path / "clean", classifier="lilnet")
    assert [(e["image_id"], e["file"]) for e in with_bad["excluded"]] == [("malignant_010", rel)]
    assert with_bad["n_excluded"] == 1 and without["n_excluded"] == 0
    assert with_bad["summary"][0].startswith("NOT AN INDEPENDENT TEST: every evaluated row (5) was used to train")
    assert with_bad["summary"][1] == "1 of 6 rows excluded (unreadable/refused)"
    for section in ("image", "patient", "levels"):
        assert with_bad[section] == without[section], section
    assert with_bad["image"]["n"] == 5


def test_strict_and_train_stop_with_one_line(folders, tmp_path):
    bad, _, rel = folders
    res = CliRunner().invoke(app, ["evaluate", "--task", "ct-liver", "--classifier", "lilnet", "--data", str(bad),
                                   "--out", str(tmp_path / "e"), "--strict"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and Path(rel).name in lines[0] and "Traceback" not in res.output
    with pytest.raises(BadRowsError) as caught:
        task.train(bad, tmp_path / "run")
    assert [b.file for b in caught.value.bad] == [rel] and not (tmp_path / "run").exists()
