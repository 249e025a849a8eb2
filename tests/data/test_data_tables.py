"""labels.csv as people write it (spreadsheet exports, Windows paths, stray spaces and capitals) on the bundled
AUL excerpt: read like the plain file, or one clear line naming labels.csv, the row and the column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.data import ManifestError, load_manifest
from lesiondx.data.tables import TableError, detect_separator, read_table

from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"
PLAIN = (MINI / "labels.csv").read_text()


def _folder(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "d") -> Path:
    """The bundled AUL excerpt (its images and masks copied) with ``text`` as its labels.csv."""
    folder = tmp_path / name
    shutil.copytree(MINI, folder)
    (folder / "labels.csv").write_bytes(text.encode(encoding))
    return folder


def _frame(folder: Path) -> pd.DataFrame:
    return load_manifest(folder).frame


@pytest.mark.parametrize("variant", ["semicolon_bom_crlf", "tab", "quoted_trailing_separators", "header_case"])
def test_spreadsheet_exports_read_like_the_plain_file(tmp_path, variant):
    lines = PLAIN.splitlines()
    text, encoding = {
        "semicolon_bom_crlf": ("\r\n".join(lines).replace(",", ";") + "\r\n", "utf-8-sig"),
        "tab": (PLAIN.replace(",", "\t"), "utf-8"),
        "quoted_trailing_separators": ("\n".join('"' + line.replace(",", '","') + '",,' for line in lines) + "\n\n",
                                       "utf-8"),
        "header_case": (PLAIN.replace("image_id,patient_id,label,image", "Image_ID,Patient_ID,Label,IMAGE", 1),
                        "utf-8"),
    }[variant]
    want = _frame(_folder(tmp_path, PLAIN, name="plain"))
    got = _frame(_folder(tmp_path, text, encoding=encoding))
    pd.testing.assert_frame_equal(got.drop(columns=["image", "lesion_mask", "liver_mask", "sector_mask"]),
                                  want.drop(columns=["image", "lesion_mask", "liver_mask", "sector_mask"]))
    assert [Path(p).name for p in got["image"]] == [Path(p).name for p in want["image"]]
    assert load_manifest(tmp_path / "d").problems == ()


def test_label_spaces_and_case_are_read_as_the_task_spells_them(tmp_path):
    text = PLAIN.replace(",benign,", ", Benign ,").replace(",malignant,", ",MALIGNANT,")
    manifest = load_manifest(_folder(tmp_path, text))
    assert manifest.frame["label"].value_counts().to_dict() == {"benign": 3, "malignant": 3, "normal": 1}
    assert any("'MALIGNANT' → 'malignant'" in w for w in manifest.warnings)
    result = CliRunner().invoke(app, ["data", "summary", str(tmp_path / "d"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["labels"] == {"benign": 3, "malignant": 3, "normal": 1}


def test_a_misspelt_label_is_still_one_line_naming_row_and_column(tmp_path):
    from lesiondx.data import require_known_labels

    manifest = load_manifest(_folder(tmp_path, PLAIN.replace(",malignant,", ",malignnat,", 1)))
    with pytest.raises(ManifestError, match=r"labels.csv, row 5, column 'label': .*'malignnat'"):
        require_known_labels(manifest, "us-liver")


def test_windows_and_spaced_paths_find_their_files(tmp_path):
    folder = _folder(tmp_path, PLAIN.replace("images/", "my images\\").replace("masks/mass/", "masks\\mass\\"))
    (folder / "images").rename(folder / "my images")
    manifest = load_manifest(folder)
    assert manifest.problems == ()
    assert all(Path(p).is_file() for p in manifest.frame["image"])


def test_text_that_is_not_utf8_is_one_line_with_the_line_number(tmp_path):
    text = PLAIN.replace("aul_g009", "aul_gé09")
    folder = _folder(tmp_path, text, encoding="latin-1")
    with pytest.raises(ManifestError, match=r"labels.csv: not UTF-8 text \(byte 0xe9 on line 3\)"):
        load_manifest(folder)
    result = CliRunner().invoke(app, ["data", "summary", str(folder)])
    assert result.exit_code == 2 and "not UTF-8" in result.output and "Traceback" not in result.output


def test_read_table_decimal_commas_in_semicolon_files_and_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image_id;label;score\r\na;1;0,83\r\nb;0;0,1\r\n", encoding="utf-8-sig")
    table = read_table(path)
    assert list(table.columns) == ["image_id", "label", "score"] and table["score"].tolist() == [0.83, 0.1]
    assert detect_separator("a,b;c") == "," and detect_separator("a;b;c") == ";" and detect_separator("x") == ","
    path.write_text("  \n")
    with pytest.raises(TableError, match="p.csv: the file is empty"):
        read_table(path)
    with pytest.raises(TableError, match="nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")
