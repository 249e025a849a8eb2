"""Lesion size in mm and location in the ct-liver JSON (real IRCADb DICOM, copied to a temporary folder only;
SYNTHETIC boxes)."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import regionprops

from ct_liver_helpers import ircadb_rows
from lesiondx.ct_liver import task
from lesiondx.ct_liver.sizes import box_size_mm, lesion_size_mm
from lesiondx.ct_liver.synthetic import make_multiphase_folder
from lesiondx.data import Box
from lesiondx.io import read_raster_array


def test_sizes_need_a_pixel_size_and_say_what_they_measured():
    boxes = [(3, Box(10, 10, 30, 20)), (5, Box(12, 8, 28, 40))]
    size = lesion_size_mm(boxes, 0.5, 2.0)
    assert (size["long_axis"], size["craniocaudal"]) == (16.0, 6.0) and "pixel spacing from the file" in size["basis"]
    unknown = lesion_size_mm(boxes, None, None)
    assert unknown["long_axis"] is None and unknown["craniocaudal"] is None and "unknown" in unknown["basis"]
    assert "estimated" in lesion_size_mm(boxes, 0.7, None, spacing_estimated=True)["basis"]
    assert box_size_mm(Box(0, 0, 10, 4), None) is None


def test_a_real_tumour_finding_gives_its_size_in_mm_and_its_lobe(ircadb_folder, tmp_path):
    """Findings used to carry only pixel boxes: no size in mm, no location. The size of a real tumour must be
    of the order of the reference mask's longest diameter."""
    rows = ircadb_rows(ircadb_folder, inside=True, n=12, pick="median")
    (tmp_path / "series").mkdir()
    for rel in rows["image"]:
        shutil.copy(ircadb_folder / rel, tmp_path / "series" / Path(rel).name)
    result = task.predict([tmp_path / "series"], "default")
    value = int(rows["lesion_value"].iloc[0])
    truth = max(regionprops((read_raster_array(ircadb_folder / p) == value).astype(np.uint8))[0].feret_diameter_max
                for p in rows["lesion_mask"] if (read_raster_array(ircadb_folder / p) == value).any())
    spacing = result["studies"][0]["pixel_spacing_mm"]
    assert spacing and not result["studies"][0]["spacing_estimated"]
    assert all(isinstance(les["size_mm"], float) for les in result["lesions"])
    sizes = [f["size_mm"]["long_axis"] for f in result["findings"]]
    assert all(f["location"].startswith("liver") for f in result["findings"])
    assert all(f["size_mm"]["craniocaudal"] > 0 for f in result["findings"])
    assert any(0.5 * truth * spacing <= s <= 1.5 * truth * spacing for s in sizes), (sizes, truth * spacing)


def test_slices_without_a_pixel_size_give_no_box_size_and_say_the_finding_size_is_estimated(tmp_path):
    """SYNTHETIC PNG slices: the pixel size is a body-width estimate (±20 %); a box's bare size_mm (shown as is
    by the service viewer) would hide that, so boxes carry none and the finding's basis says estimated."""
    data = make_multiphase_folder(tmp_path / "data", kinds=("MET",), patients_per_kind=1, slices=4, size=128, seed=3)
    rows = pd.read_csv(data / "labels.csv")
    folder = tmp_path / "series"
    folder.mkdir()
    for rec in rows[rows["phase"] == "portal-venous"].itertuples():
        shutil.copy(data / rec.image, folder / f"slice_{rec.slice_index:02d}.png")
    result = task.predict([folder], "default", window="abdomen", phases=["portal-venous"])
    assert result["studies"][0]["spacing_estimated"] and result["lesions"] and result["findings"]
    assert all(les["size_mm"] is None for les in result["lesions"])
    size = result["findings"][0]["size_mm"]
    assert size["long_axis"] > 0 and size["craniocaudal"] is None and "estimated from the body width" in size["basis"]


def test_a_craniocaudal_extent_cut_by_the_series_end_or_a_gap_says_so():
    """SYNTHETIC slice indices. Before, a lesion on the series' last slice, or on the slice beside a gap of missing
    slices, was given its craniocaudal size as if it had been seen whole."""
    from lesiondx.ct_liver.sizes import extent_cut

    assert extent_cut(3, 6, 20) is None
    assert "first slice" in extent_cut(0, 4, 20) and "last slice" in extent_cut(15, 19, 20)
    assert "gap" in extent_cut(5, 9, 20, gaps=(9,))  # the gap lies between slices 9 and 10
    assert "gap" in extent_cut(10, 12, 20, gaps=(9,)) and extent_cut(11, 12, 20, gaps=(9,)) is None
    size = lesion_size_mm([(9, Box(0, 0, 10, 10))], 1.0, 1.6, n_slices=20, gaps=(9,))
    assert size["craniocaudal"] == 1.6 and "at least" in size["craniocaudal_note"]
