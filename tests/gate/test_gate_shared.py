"""The input gates on the real shared data: no false refusals of real chest CTs, and out-of-scope input
(ultrasound, MR, abdominal CT, CT given to the ultrasound model) refused before any model runs.
IRCADb is read in place (CC BY-NC-ND; nothing copied)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lesiondx.gate import InputRefused, check
from lesiondx.io import MedicalImage, apply_window, read_image, read_study
from lesiondx_testdata import EXAMPLES, SHARED_DATA

CHEST_SERIES = ("covid_ct_md_sample/series/P002", "covid_ct_md_sample/series/normal001",
                "chest_ct_lung_cancer/series/A0001", "chest_ct_lung_cancer/series/A0002")
US_JPEG = EXAMPLES / "aul_liver_us_mini" / "images" / "benign_001.jpg"


@lru_cache(maxsize=8)
def _series(rel: str) -> MedicalImage:
    path = SHARED_DATA / rel
    if not path.is_dir():
        pytest.skip(f"shared series {path} not found")
    return read_study(path)


def _ircadb() -> Path:
    found = sorted(p for p in SHARED_DATA.glob("liver_ircadb01_*/ct/*") if p.is_dir())
    if not found:
        pytest.skip(f"no liver_ircadb01_* CT under {SHARED_DATA}")
    return found[0]


@pytest.mark.parametrize("rel", CHEST_SERIES)
def test_real_chest_ct_passes_the_ct_covid_gate(rel: str):
    """Never refused; A0002 (8 mm slices) is flagged as thicker than the rule was validated on, and nothing else."""
    verdict = check("ct-covid", _series(rel))
    assert verdict.checks["body_region"]["value"]["slices_with_lungs"] >= 0.55
    step = verdict.checks["slice_step"]["value"]["slice_step_mm"]
    if step > 5.0:
        assert rel.endswith("A0002") and step == pytest.approx(8.0, abs=0.5)
        assert verdict.status == "flagged" and len(verdict.reasons) == 1 and "8.0 mm apart" in verdict.reasons[0]
    else:
        assert verdict.status == "ok", verdict.reasons


def test_medseg_chest_slices_are_not_refused(medseg_folder: Path):
    images = sorted((medseg_folder / "test" / "images").glob("*.jpg"))[:6]
    verdicts = [check("ct-covid", read_image(p)) for p in images]
    assert [v.status for v in verdicts].count("refused") == 0
    for v in verdicts:  # a CT slice with lungs; flagged only because one slice cannot meet the 3-slice rule
        assert v.checks["modality"]["status"] == "ok" and v.checks["body_region"]["status"] == "ok", v.checks
        assert v.reasons == ("1 slice(s); the model's rule needs at least 3",)


def test_abdominal_ct_is_refused_by_ct_covid_and_accepted_by_ct_liver():
    image = read_study(_ircadb())
    covid = check("ct-covid", image)
    assert covid.status == "refused" and "not a chest CT" in covid.reasons[0]
    assert check("ct-liver", image).status == "ok"


def test_ct_covid_predict_refuses_ultrasound_before_any_model():
    from lesiondx.ct_covid.task import predict

    with pytest.raises(InputRefused, match="B-mode ultrasound"):
        predict([US_JPEG], model="/nonexistent-model")  # the model is never loaded


def test_ct_covid_predict_refuses_a_folder_of_ultrasound_frames(tmp_path: Path):
    """The service hands raster slices to ct-covid as a folder: it must not pass for a CT series (it did:
    a folder was labelled CT, the probe never ran, and an ultrasound JPEG got "COVID-19, p = 0.997")."""
    from lesiondx.ct_covid.task import predict

    for i in range(3):
        (tmp_path / f"{i:05d}.jpg").write_bytes(US_JPEG.read_bytes())
    with pytest.raises(InputRefused, match="B-mode ultrasound"):
        predict([tmp_path], model="/nonexistent-model")


def test_ct_covid_predict_refuses_an_mr_series(tmp_path: Path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    from lesiondx.ct_covid.task import predict

    series = generate_uid()
    rng = np.random.default_rng(0)
    for i in range(4):  # synthetic MR slices
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID, ds.file_meta.MediaStorageSOPClassUID = ExplicitVRLittleEndian, MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.Modality, ds.SeriesInstanceUID = MRImageStorage, "MR", series
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, -5.0 * i], [1, 0, 0, 0, 1, 0]
        ds.PixelData = rng.integers(0, 4000, (64, 64), dtype=np.uint16).tobytes()
        ds.save_as(tmp_path / f"mr{i}.dcm", enforce_file_format=True)
    with pytest.raises(InputRefused, match="Modality is MR"):
        predict([tmp_path], model="/nonexistent-model")


def test_us_liver_refuses_ct_dicom_and_ct_slice_pngs(tmp_path: Path):
    image = _series("chest_ct_lung_cancer/series/A0002")
    assert check("us-liver", image.slice(15)).status == "refused"
    for window in ("lung", "abdomen"):
        png = tmp_path / f"slice_{window}.png"
        Image.fromarray(apply_window(image.pixels[15], window).astype(np.uint8)).save(png)
        verdict = check("us-liver", read_image(png))
        assert verdict.status == "refused" and "CT slice" in verdict.reasons[0], window


def test_us_liver_accepts_and_ct_liver_refuses_ultrasound():
    image = read_image(US_JPEG)
    assert check("us-liver", image).status == "ok"
    refused = check("ct-liver", image)
    assert refused.status == "refused" and "ultrasound" in refused.reasons[0]


def test_ct_liver_flags_a_chest_series():
    verdict = check("ct-liver", _series("chest_ct_lung_cancer/series/A0002"))
    assert verdict.status == "flagged" and "chest" in verdict.reasons[0]


def test_a_chest_ct_excerpt_is_flagged_as_covering_part_of_the_lungs():
    """The bundled 10 slices of P002 (the lungs go on beyond both ends); the whole series passes (test above)."""
    from lesiondx.gate.ct_covid import lung_coverage_check

    excerpt = read_study(EXAMPLES / "covid_ct_md_mini" / "series" / "P002")
    result = lung_coverage_check(excerpt)
    assert result.status == "flagged" and "beyond the first and last slice" in result.reason
    assert min(result.value["end_lung_fractions"]) >= 0.10
    windowed = replace(excerpt, is_hu=False)  # 8-bit slices: cannot be judged
    assert lung_coverage_check(windowed).status == "ok" and lung_coverage_check(windowed).value["end_lung_fractions"] is None


def test_ct_liver_refuses_a_chest_series_that_never_reaches_the_liver():
    """CT-MD P002 stops above the liver (no slice at liver level): refused; it used to be flagged only and report a
    'liver, right lobe' finding."""
    verdict = check("ct-liver", _series("covid_ct_md_sample/series/P002"))
    assert verdict.status == "refused" and "no slice at liver level" in verdict.reasons[0]
    assert verdict.checks["body_region"]["value"]["slices_with_liver_tissue"] == 0.0
