"""Several inputs as the phases of one patient: the same series twice and series of different patients or
studies are refused with one line naming the input; a repeated phase keeps the first series' HU (real IRCADb
DICOM read in place; SYNTHETIC phantoms)."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_liver import task
from lesiondx.ct_liver.candidates import Detection
from lesiondx.data import mask_box
from lesiondx.ct_liver.findings import Series, findings
from lesiondx.ct_liver.phase_set import check_phase_set, unique_name
from lesiondx.ct_liver.phases import SeriesTags, shifted
from lesiondx.ct_liver.synthetic import make_multiphase_folder, phantom_slice


def _phantom_stack(kind: str, n_slices: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU, liver and lesion masks of ``n_slices`` SYNTHETIC portal-venous slices of one ``kind`` of lesion."""
    rng = np.random.default_rng(seed)
    hu, liver, lesion = zip(*[phantom_slice(kind, "portal-venous", size=96, centre=(40, 35), radius=10, rng=rng)
                              for _ in range(n_slices)])
    return np.stack(hu), np.stack(liver), np.stack(lesion)


def _series(ircadb_folder: Path, patient: str) -> Path:
    folder = ircadb_folder / "ct" / patient
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    return folder


def test_series_of_two_different_studies_are_refused_before_reading(ircadb_folder):
    """IRCADb p01 + p07 (two patients, two StudyInstanceUIDs) were read as two portal-venous phases of one
    patient: p07's HU overwrote p01's in every finding (p01's tumour 3 was called a cyst from p07's pixels)."""
    p01, p07 = _series(ircadb_folder, "p01"), _series(ircadb_folder, "p07")
    with pytest.raises(ValueError, match=r"p07: not the same study \(StudyInstanceUID\) as .*p01"):
        task.predict([p01, p07], "default")


def test_the_same_series_twice_is_refused(ircadb_folder, tmp_path):
    """The same folder twice, or a copy of some of its slices (same SeriesInstanceUID), is one series."""
    p01 = _series(ircadb_folder, "p01")
    with pytest.raises(ValueError, match="p01: given twice"):
        task.predict([p01, p01], "default")
    part = tmp_path / "part"
    part.mkdir()
    for name in ("image_60", "image_61", "image_62"):
        shutil.copy(p01 / name, part / name)  # a temporary copy only (CC BY-NC-ND)
    with pytest.raises(ValueError, match=r"part: the same series as .*p01 \(same SeriesInstanceUID\)"):
        task.predict([p01, part], "default")


def test_a_phase_set_without_uids_is_judged_by_its_pixels(tmp_path):
    """SYNTHETIC PNG slices copied to a second folder: no DICOM tags, refused as the same pixels."""
    data = make_multiphase_folder(tmp_path / "data", kinds=("HCC",), patients_per_kind=1, slices=3, size=96, seed=5)
    rows = pd.read_csv(data / "labels.csv")
    rows = rows[rows["phase"] == "portal-venous"]
    a, b = tmp_path / "a" / "series", tmp_path / "b" / "series"
    for folder in (a, b):
        folder.mkdir(parents=True)
        for rec in rows.itertuples():
            shutil.copy(data / rec.image, folder / f"slice_{rec.slice_index:02d}.png")
    with pytest.raises(ValueError, match=r"b/series: the same pixels as series series; give each phase's series once"):
        task.predict([a, b], "default", window="abdomen", phases=["arterial", "portal-venous"])


def test_tags_of_one_study_pass_and_names_are_kept_apart():
    same = SeriesTags("iodine", "101010", "P1", "1.2.3", "1.2.3.1"), SeriesTags("iodine", "101500", "P1", "1.2.3", "1.2.3.2")
    check_phase_set([Path("a"), Path("b")], same)  # no error
    check_phase_set([Path("a"), Path("b")], [SeriesTags(), SeriesTags()])  # slice images: nothing to judge
    with pytest.raises(ValueError, match=r"b: not the same patient \(PatientID\) as a"):
        check_phase_set([Path("a"), Path("b")], [same[0], SeriesTags(patient_id="P2", study_uid="1.2.3")])
    assert unique_name("series", ["series", "series-2"]) == "series-3" and unique_name("x", ["series"]) == "x"


def test_a_repeated_phase_keeps_the_first_series_measurements():
    """Two series both called portal-venous: the later one's HU used to replace the first's in the finding."""
    hu, liver, lesion = _phantom_stack("cyst", 3, seed=0)
    box = mask_box(lesion[1])
    found = tuple(Detection(z, box, 1.0) for z in range(3))
    bright = np.where(lesion, 160.0, hu).astype(np.float32)  # another series of the same phase, lesion bright
    result = findings([Series("first", "portal-venous", hu, liver, 1.0, found),
                       Series("second", "portal-venous", bright, liver, 1.0, ())])
    phases = result[0]["phases"]
    assert set(phases) == {"portal-venous", "portal-venous (second)"}
    assert phases["portal-venous"]["core_hu"] < 30  # the first series (a water-dense cyst), not the bright one
    assert result[0]["evidence"]["pattern"] == "cyst"


def test_a_phase_whose_series_does_not_reach_the_lesion_is_not_measured():
    """IRCADb p01 slices re-tagged as an arterial series (50 slices) and a shorter portal-venous one (47):
    lesions beyond the shorter series' end were 'measured' on its fill value (liver -86 HU). SYNTHETIC here:
    a 6-slice reference, a second phase covering only its first 3 slices, the lesion's boxes on slices 3-5."""
    hu, liver, lesion = _phantom_stack("HCC", 6, seed=1)
    box = mask_box(lesion[3])
    ref = Series("ref", "portal-venous", hu, liver, 1.0, tuple(Detection(z, box, 1.0) for z in (3, 4, 5)))
    short = Series("short", "arterial", hu[:3] + 40, liver[:3], 1.0, ())
    fill = float(np.median(short.hu))
    result = findings([ref, short], ([(0, 0, 0), (0, 0, 0)], [hu, shifted(short.hu, (0, 0, 0), hu.shape, fill)]))
    assert len(result) == 1 and result[0]["slices"][0] >= 3
    assert set(result[0]["phases"]) == {"portal-venous"} and result[0]["not_covered_by"] == ["short"]
    feats = {f["name"]: f for f in result[0]["features"]}
    assert feats["aphe"]["present"] is None
