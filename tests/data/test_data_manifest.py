"""Manifests and summaries of the real shared dataset folders (counts checked against labels.csv)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.data import ManifestError, load_manifest, summarise_folder

from lesiondx_testdata import EXAMPLES, shared_dataset

DATASETS = {
    "aul_liver_us": "aul_liver_us", "covid_ct_md_sample": "covid_ct_md",
    "covid_medseg_semiseg": "covid_medseg", "liver_ircadb01_p01_p07": "ircadb_liver_ct",
}
MASK_COLUMNS = {"lesion_mask": "lesion", "liver_mask": "liver", "infection_mask": "infection", "sector_mask": "sector"}


def _expected_summary(folder: Path) -> dict:
    """Counts computed independently of lesiondx, straight from labels.csv and the file system."""
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    patients: dict[str, set[str]] = {}
    for row in rows:
        patients.setdefault(row["label"], set()).add(row["patient_id"])
    masks = {
        kind: sum(1 for r in rows if r[column] and (folder / r[column]).is_file())
        for column, kind in MASK_COLUMNS.items() if column in rows[0]
    }
    return {
        "n_images": len(rows), "n_patients": len({r["patient_id"] for r in rows}),
        "labels": dict(Counter(r["label"] for r in rows)),
        "patients_per_label": {k: len(v) for k, v in patients.items()}, "masks": masks,
    }


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_shared_dataset_loads_with_its_layout_and_right_counts(name):
    folder = shared_dataset(name)
    manifest = load_manifest(folder)
    assert manifest.layout.name == DATASETS[name]
    assert all(Path(p).is_file() for p in manifest.frame["image"])
    result = CliRunner().invoke(app, ["data", "summary", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    for key, value in _expected_summary(folder).items():
        assert summary[key] == value, key
    assert summary["problems"] == []


def test_extra_columns_are_kept_and_paths_resolved(aul_folder, medseg_folder):
    medseg = load_manifest(medseg_folder)
    assert {"split", "infection_pixels"} <= set(medseg.extra_columns)
    aul = load_manifest(aul_folder)
    normal = aul.frame[aul.frame.label == "normal"]
    assert normal["lesion_mask"].isna().all()  # normal images have no mass outline
    assert Path(aul.frame["image"].iloc[0]).is_absolute()


def _write_csv(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.csv").write_text(text)
    return folder


def test_validation_errors_name_row_and_column(tmp_path):
    with pytest.raises(ManifestError, match="column 'label'"):
        load_manifest(_write_csv(tmp_path / "a", "image_id,image\nx,x.png\n"))
    with pytest.raises(ManifestError) as info:
        load_manifest(_write_csv(tmp_path / "b", "image_id,label,image\nx,benign,x.png\ny,,y.png\n"))
    assert info.value.row == 3 and info.value.column == "label"
    with pytest.raises(ManifestError, match="duplicate image_id 'x'"):
        load_manifest(_write_csv(tmp_path / "c", "image_id,label,image\nx,a,x.png\nx,b,y.png\n"))
    with pytest.raises(ManifestError, match="slice_index"):
        load_manifest(_write_csv(tmp_path / "d", "image_id,label,image,slice_index\nx,a,x.png,1.5\n"))
    with pytest.raises(ManifestError, match="labels.csv not found"):
        load_manifest(tmp_path)


def test_unseen_folder_with_missing_files_and_clinical_columns(tmp_path):
    folder = _write_csv(tmp_path / "new", "image_id,label,image,age,centre\nx,benign,x.png,61,A\ny,malignant,y.png,70,B\n")
    (folder / "x.png").write_bytes(b"")
    summary = summarise_folder(folder)
    assert summary.n_images == 2 and summary.layout == "generic"
    assert any("image file(s) missing" in p and "y.png" in p for p in summary.problems)
    assert any("image file(s) unreadable" in p and "x.png: file is empty" in p for p in summary.problems)
    assert any("no patient_id" in w for w in summary.warnings)  # a warning, not a problem
    assert "age" in load_manifest(folder).extra_columns


def test_examples_summarise_through_the_cli():
    result = CliRunner().invoke(app, ["data", "summary", str(EXAMPLES / "aul_liver_us_mini"), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["labels"] == {"benign": 3, "malignant": 3, "normal": 1}
    bad = CliRunner().invoke(app, ["data", "summary", str(EXAMPLES)])
    assert bad.exit_code == 2 and "labels.csv not found" in bad.output


def test_require_files_names_missing_files_only(tmp_path):
    folder = _write_csv(tmp_path / "nopid", "image_id,label,image\nx,benign,x.png\n")
    (folder / "x.png").write_bytes(b"\x89PNG")
    manifest = load_manifest(folder)
    assert any("no patient_id" in w for w in manifest.warnings) and not manifest.problems
    manifest.require_files()  # a missing patient_id column is a problem to report, not a missing file
    (folder / "x.png").unlink()
    with pytest.raises(ManifestError, match="1 image file\\(s\\) missing"):
        manifest.require_files()


def test_empty_file_misspelt_mask_column_and_unknown_labels_are_one_clear_line(tmp_path):
    from lesiondx.data import require_known_labels

    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("")
    with pytest.raises(ManifestError, match=r"labels.csv: labels.csv is empty \(it needs a header"):
        load_manifest(tmp_path)
    csv_path.write_text("image_id,label,image,lesion_msk_mask\na,benign,a.png,m.png\n")
    with pytest.raises(ManifestError, match=r"labels.csv, column 'lesion_msk_mask': unknown mask column"):
        load_manifest(tmp_path)
    csv_path.write_text("image_id,label,image\na,benign,a.png\nb,Malignnat,b.png\n")
    manifest = load_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"labels.csv, row 3, column 'label': label\(s\) task us-liver does "
                                            r"not know: 'Malignnat' \(known: benign, malignant, normal\)"):
        require_known_labels(manifest, "us-liver")
    require_known_labels(manifest, "us-liver", extra=("Malignnat",))


def test_row_numbers_are_file_lines_with_blank_lines_and_in_subsets(tmp_path):
    """A blank line above a row used to shift every later row number by one; a subset's rows were numbered
    from its own first row."""
    from lesiondx.data import BadRow, load_manifest
    from lesiondx.data.badrows import bad_row_from

    (tmp_path / "images").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "images" / f"{name}.png").write_bytes(b"x")
    (tmp_path / "labels.csv").write_text("image_id,patient_id,label,image\n\na,p1,benign,images/a.png\n"
                                         "b,p2,malignant,images/b.png\n\n\nc,p3,benign,images/c.png\n"
                                         "d,p4,benign,images/missing.png\n")
    manifest = load_manifest(tmp_path)
    assert manifest.lines == (3, 4, 7, 8)
    assert any("missing: row 8 images/missing.png" in p for p in manifest.problems)
    later = manifest.subset(manifest.frame["image_id"].isin(["c", "d"]))
    assert later.lines == (7, 8) and later.line(0) == 7
    assert bad_row_from(later, 1, ValueError("broken")) == BadRow("d", "images/missing.png", "broken", 8)
