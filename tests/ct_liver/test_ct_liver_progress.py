"""ct-liver predict reports its progress (the service's progress line): each series' stages, then the
characterisation (SYNTHETIC two-phase phantom)."""

import shutil

import pandas as pd

from lesiondx.ct_liver import task
from lesiondx.ct_liver.synthetic import make_multiphase_folder
from lesiondx.progress import reporting


def test_a_two_phase_study_reports_each_series_stage_and_the_characterisation(tmp_path):
    data = make_multiphase_folder(tmp_path / "data", kinds=("HCC",), patients_per_kind=1, slices=3, size=96, seed=4)
    rows = pd.read_csv(data / "labels.csv")
    folders = []
    for phase in ("arterial", "portal-venous"):
        folder = tmp_path / phase
        folder.mkdir()
        for rec in rows[rows["phase"] == phase].itertuples():
            shutil.copy(data / rec.image, folder / f"slice_{rec.slice_index:02d}.png")
        folders.append(folder)
    seen = []
    with reporting(lambda stage, done, total: seen.append((stage, done, total))):
        task.predict(folders, "default", window="abdomen", phases=["arterial", "portal-venous"])
    stages = [s for s, _, _ in seen]
    assert "series 1/2 (arterial): candidates" in stages and "series 2/2 (portal-venous): candidates" in stages
    assert ("characterisation", 2, 2) in seen
    assert stages.index("series 2/2 (portal-venous): decode") > stages.index("series 1/2 (arterial): outputs")
