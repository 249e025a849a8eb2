"""Anatomy jumps in plain slice folders: real consecutive CT slices pass, unrelated slices are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.ct_covid.task import _read_series
from lesiondx.io import ImageReadError, apply_window, read_series_files, read_slice_folder, read_study
from lesiondx.io.continuity import MIN_NEIGHBOUR_SIMILARITY, slice_breaks

from lesiondx_testdata import SHARED_DATA

NORMAL = SHARED_DATA / "covid_ct_md_sample" / "series" / "normal001"
CANCER = SHARED_DATA / "chest_ct_lung_cancer" / "series" / "A0001"


def _hu(series: Path) -> np.ndarray:
    if not series.is_dir():
        pytest.skip(f"shared chest-CT series absent: {series}")
    return read_study(series).pixels


def _export(slices: list[np.ndarray], folder: Path, window: str) -> list[Path]:
    """Windowed 8-bit PNGs named 001.png, 002.png... in the given order (a tmp folder, never the repo)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, hu in enumerate(slices, start=1):
        paths.append(folder / f"{k:03d}.png")
        Image.fromarray(apply_window(hu, window).astype(np.uint8)).save(paths[-1])
    return paths


@pytest.mark.parametrize("window", ["lung", "abdomen"])
def test_real_consecutive_slices_are_one_series_even_8_mm_apart(tmp_path, window):
    hu = _hu(NORMAL)  # 2 mm slices
    mid = len(hu) // 2
    dense = _export(list(hu[mid - 6: mid + 6]), tmp_path / "dense", window)
    sparse = _export(list(hu[mid - 24: mid + 24: 4]), tmp_path / "sparse", window)
    assert read_slice_folder(dense[0].parent).pixels.shape[0] == 12
    assert read_slice_folder(sparse[0].parent).pixels.shape[0] == 12
    assert read_series_files(sparse).pixels.shape[0] == 12


def test_unrelated_real_slices_in_one_folder_are_refused_naming_the_jump(tmp_path):
    normal, cancer = _hu(NORMAL), _hu(CANCER)
    mixed = [normal[60], normal[61], cancer[len(cancer) // 2], normal[62]]
    paths = _export(mixed, tmp_path / "mixed", "lung")
    with pytest.raises(ImageReadError, match=r"not one series.*002\.png → 003\.png") as info:
        read_slice_folder(tmp_path / "mixed")
    assert info.value.path == tmp_path / "mixed"
    with pytest.raises(ImageReadError, match="not one series"):  # ct-covid given the files in order
        _read_series(paths)
    assert len(slice_breaks(np.stack(mixed))) == 2  # into the cancer slice and out of it


def test_slice_breaks_on_synthetic_stacks():
    """SYNTHETIC: a smooth blob stack has no breaks; a slice moved half the image away is a break both sides."""
    yy, xx = np.mgrid[:128, :128]
    stack = np.stack([200.0 * (((yy - 64) / 40.0) ** 2 + ((xx - 64) / (45.0 + k)) ** 2 < 1) for k in range(6)])
    assert slice_breaks(stack) == []
    jumped = stack.copy()
    jumped[3] = np.roll(stack[3], 64, axis=1)
    breaks = slice_breaks(jumped)
    assert [b.index for b in breaks] == [2, 3]
    assert all(b.similarity < MIN_NEIGHBOUR_SIMILARITY for b in breaks)
    assert slice_breaks(stack[:1]) == []
