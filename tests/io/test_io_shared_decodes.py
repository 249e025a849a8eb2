"""lesiondx.io.shared_decodes: one decode per input inside the block (the service worker's previews, viewer slices
and predictor), read-only pixels, nothing shared outside it. Synthetic PNG slices."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import lesiondx.io.reader as reader
from lesiondx.io import read_image, read_study, shared_decodes


@pytest.fixture
def slice_folder(tmp_path):
    yy, xx = np.mgrid[:64, :64]
    for i in range(3):  # a blob that grows a little from slice to slice: one continuous series
        blob = 200.0 * np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / (2.0 * (10 + i) ** 2))
        Image.fromarray((20 + blob).astype(np.uint8)).save(tmp_path / f"slice_{i}.png")
    return tmp_path


@pytest.fixture
def decodes(monkeypatch):
    """Counts the real decodes: a slice folder (read_slice_folder) and a single PNG (read_raster)."""
    count = {"folder": 0, "file": 0}
    read_folder, read_file = reader.read_slice_folder, reader.read_raster

    def folder(path):
        count["folder"] += 1
        return read_folder(path)

    def file(path):
        count["file"] += 1
        return read_file(path)

    monkeypatch.setattr(reader, "read_slice_folder", folder)
    monkeypatch.setattr(reader, "read_raster", file)
    return count


def test_one_decode_per_input_inside_the_block(slice_folder, decodes):
    with shared_decodes():
        first = read_study(slice_folder)
        assert read_image(slice_folder) is first and read_study(slice_folder) is first  # previews, viewer, predictor
        one = read_image(slice_folder / "slice_0.png")
        assert read_image(slice_folder / "slice_0.png") is one
    assert decodes == {"folder": 1, "file": 1}
    assert first.pixels.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="read-only"):
        first.pixels[0, 0, 0] = 1.0  # no reader can change what another one sees


def test_nothing_shared_outside_the_block_or_after_a_change(slice_folder, decodes):
    a, b = read_study(slice_folder), read_study(slice_folder)
    assert a is not b and a.pixels.flags.writeable
    assert decodes["folder"] == 2
    path = slice_folder / "slice_1.png"
    with shared_decodes():
        before = read_image(path)
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(path)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # surely a new mtime
        after = read_image(path)
    assert after is not before and float(after.pixels.max()) == 0.0


def test_unreadable_input_still_fails_every_time(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with shared_decodes():
        for _ in range(2):
            with pytest.raises(Exception, match="broken.png"):
                read_image(bad)


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
CT_MD_MINI = REPO / "examples" / "covid_ct_md_mini"


@pytest.fixture
def dicom_decodes(monkeypatch):
    """Counts the real decodes of DICOM pixel data (one per file and call of ``image_from_dataset``)."""
    import lesiondx.io.dicom as dicom

    count = {"n": 0}
    real = dicom._decoded_pixels

    def counted(ds, path):
        count["n"] += 1
        return real(ds, path)

    monkeypatch.setattr(dicom, "_decoded_pixels", counted)
    return count


def test_a_series_read_after_its_slices_reuses_their_decodes_without_keeping_a_second_copy(dicom_decodes):
    from lesiondx.io import read_series_files
    from lesiondx.io.decodes import _DECODES

    files = sorted((CT_MD_MINI / "series" / "P002").glob("*.dcm"))
    plain = read_series_files(files)  # outside a block: every slice decoded
    assert dicom_decodes["n"] == len(files) == 10
    with shared_decodes():
        for f in files:
            read_image(f)  # the evaluate screen's per-row read
        series = read_series_files(files)  # the series gate
        kept = len(_DECODES.get().images)
    assert dicom_decodes["n"] == 2 * len(files)  # the series took the 10 slices already decoded
    assert kept == len(files)  # the series' slices were not kept a second time
    np.testing.assert_array_equal(series.pixels, plain.pixels)
    assert series.spacing == plain.spacing and series.positions == plain.positions


def test_a_bounded_block_drops_the_least_recently_used_image(slice_folder, decodes):
    one_slice = 64 * 64 * 4  # float32 pixels of one synthetic PNG slice
    paths = [slice_folder / f"slice_{i}.png" for i in range(3)]
    with shared_decodes(max_bytes=2 * one_slice):
        first = read_image(paths[0])
        read_image(paths[1])
        assert read_image(paths[0]) is first  # used again: now the most recent
        read_image(paths[2])  # over the bound: slice_1, the least recently used, is dropped
        assert read_image(paths[0]) is first
        read_image(paths[1])
    assert decodes["file"] == 4  # slice_0 once, slice_1 twice, slice_2 once


def test_a_bounded_block_counts_the_colour_plane_too(tmp_path, decodes):
    """A colour frame keeps its chroma plane (uint8, a quarter of the float32 grey): the byte budget counts it, so
    two SYNTHETIC colour PNGs whose grey alone fits the bound but grey + chroma does not cannot both stay."""
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0], rgb[8:40, 8:40] = 120, (255, 255, 0)  # red-tinted ground, a yellow square: chroma everywhere
    paths = [tmp_path / f"colour_{i}.png" for i in range(2)]
    for path in paths:
        Image.fromarray(rgb).save(path)
    grey_bytes = 64 * 64 * 4
    with shared_decodes(max_bytes=2 * grey_bytes + 64 * 64):  # room for 2 grey planes and 1 chroma plane
        first = read_image(paths[0])
        assert first.chroma is not None and first.chroma.nbytes == 64 * 64
        read_image(paths[1])  # grey 2 x 16 KiB + chroma 2 x 4 KiB: over the bound, colour_0 dropped
        read_image(paths[0])
    assert decodes["file"] == 3  # colour_0 decoded again (before: kept, 2 decodes)
