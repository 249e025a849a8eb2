"""The CLI junk list of issue 15 (inputs generated here, SYNTHETIC): every failure is ONE line naming the
file and the reason, exit code 2 for bad input, 1 for internal errors, the traceback only with --debug."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lesiondx.cli import app

from lesiondx_testdata import EXAMPLES

CT_SERIES = EXAMPLES / "covid_ct_md_mini" / "series" / "P002"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _grey_png(path: Path, width: int, height: int, *, rows: int | None = None) -> Path:
    """A black 8-bit PNG of ``width`` x ``height`` whose data holds ``rows`` rows (all by default), streamed
    so that no full-size array is ever allocated here."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, result.output


def _assert_one_line_error(result, output: str, code: int, *names: str) -> str:
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_predict_on_a_60000_squared_png_header(tmp_path):
    png = _grey_png(tmp_path / "huge_header.png", 60000, 60000, rows=1)
    line = _assert_one_line_error(*_invoke("predict", "--task", "us-liver", str(png)), 2, "huge_header.png")
    assert "pixels" in line or "too large" in line


def test_predict_on_a_20000_squared_png(tmp_path):
    png = _grey_png(tmp_path / "big.png", 20000, 20000)
    assert png.stat().st_size < 2_000_000  # a small file...
    _assert_one_line_error(*_invoke("predict", "--task", "us-liver", str(png)), 2, "big.png")  # ...refused


def test_evaluate_on_a_header_only_labels_csv(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "labels.csv").write_text("image_id,patient_id,label,image\n")
    line = _assert_one_line_error(*_invoke("evaluate", "--task", "us-liver", "--data", str(folder),
                                           "--out", str(tmp_path / "out")), 2, "labels.csv")
    assert "labels.csv has no rows" in line


def test_predict_ct_liver_on_a_dicom_folder_with_a_licence_file(tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(CT_SERIES, folder)
    (folder / "LICENSE").write_text("Creative Commons Attribution 4.0\n")
    result, output = _invoke("predict", "--task", "ct-liver", str(folder), "--json")
    assert "Traceback" not in output
    # the reader skips the text file; the ct-liver input gate then refuses this chest series, in one line
    line = _assert_one_line_error(result, output, 2, "refused for task ct-liver")
    assert "LICENSE" not in line  # the licence file is not what failed
    result, output = _invoke("predict", "--task", "ct-covid", str(folder), "--json")  # the task this series is for
    assert result.exit_code == 0 and "Traceback" not in output
    assert "LICENSE" in output  # listed as a skipped non-DICOM file


def test_missing_input_and_unknown_task(tmp_path):
    _assert_one_line_error(*_invoke("predict", "--task", "us-liver", str(tmp_path / "nope.png")), 2, "nope.png")
    line = _assert_one_line_error(*_invoke("predict", "--task", "mri-brain", str(tmp_path / "x.png")), 2)
    assert "unknown task 'mri-brain'" in line


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    from lesiondx.us_liver import task as us_task

    def broken(inputs, model, out, **options):
        raise TypeError("'>' not supported between instances of 'NoneType' and 'int'")

    monkeypatch.setattr(us_task, "predict", broken)
    image = _grey_png(tmp_path / "frame.png", 16, 16)
    line = _assert_one_line_error(*_invoke("predict", "--task", "us-liver", str(image)), 1, "frame.png")
    assert "internal error (TypeError" in line and "--debug" in line
    result, _ = _invoke("--debug", "predict", "--task", "us-liver", str(image))
    assert isinstance(result.exception, TypeError)  # not swallowed: the traceback reaches the terminal


@pytest.mark.parametrize("exc", [KeyError("label"), OSError(2, "No such file or directory", "/data/x.png")])
def test_bad_input_exceptions_name_the_file(tmp_path, monkeypatch, exc):
    from lesiondx.us_liver import task as us_task

    def failing(inputs, model, out, **options):
        raise exc

    monkeypatch.setattr(us_task, "predict", failing)
    image = _grey_png(tmp_path / "frame.png", 16, 16)
    line = _assert_one_line_error(*_invoke("predict", "--task", "us-liver", str(image)), 2)
    assert ("frame.png" in line and "'label'" in line) if isinstance(exc, KeyError) else "/data/x.png" in line


def test_predict_ct_liver_on_a_folder_of_unrelated_slices_is_one_line_naming_the_jump(tmp_path):
    """Real CT-MD slices exported as PNG, the middle one swapped for a copy shifted by half the image (a
    SYNTHETIC anatomy jump): refused as not one series, naming the folder and the pair; --series is ct-liver only."""
    import numpy as np
    from PIL import Image

    from lesiondx.io import apply_window, read_study

    hu = read_study(CT_SERIES).pixels[:3]
    hu[1] = np.roll(hu[1], hu.shape[2] // 2, axis=1)
    folder = tmp_path / "unrelated"
    folder.mkdir()
    for k, s in enumerate(hu, start=1):
        Image.fromarray(apply_window(s, "lung").astype(np.uint8)).save(folder / f"{k}.png")
    line = _assert_one_line_error(*_invoke("predict", "--task", "ct-liver", str(folder)), 2, "unrelated",
                                  "not one series", "1.png → 2.png")
    assert "separate files" in line
    result, output = _invoke("predict", "--task", "us-liver", "--series", str(folder / "1.png"))
    assert result.exit_code == 2 and "--series" in output


def test_a_message_that_names_its_file_is_not_prefixed_and_every_argument_path_is_named(tmp_path):
    """A model directory of another task was reported as "DATA_FOLDER: RUN: no model.pt" (the data folder, which
    is fine, first); a bad config value as "DATA (+1 more): folds must be …" (the config file hidden)."""
    covid = EXAMPLES / "covid_ct_md_mini"
    us_model = Path(__file__).resolve().parents[1] / "models" / "us-liver"
    line = _assert_one_line_error(*_invoke("evaluate", "--task", "ct-covid", "--model", str(us_model), "--data", str(covid),
                                           "--out", str(tmp_path / "ev")), 2, "no model.pt")
    assert line.startswith(f"error: {us_model}: ") and str(covid) not in line
    config = tmp_path / "tiny.yaml"
    config.write_text("folds: 2\n")
    line = _assert_one_line_error(*_invoke("train", "--task", "us-liver", "--data", str(EXAMPLES / "aul_liver_us_mini"),
                                           "--out", str(tmp_path / "run"), "--config", str(config)), 2, "folds must be")
    assert str(config) in line and "more)" not in line
