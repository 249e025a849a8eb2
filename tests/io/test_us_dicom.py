"""Ultrasound DICOM as scanners send it reaches the shipped us-liver model: RGB, YBR_FULL, PALETTE COLOR,
big-endian, JPEG 2000, JPEG baseline YBR_FULL_422, multi-frame cine; spacing from the US regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lesiondx.io import read_image, read_raster_array
from lesiondx_testdata import EXAMPLES
from us_dicom_kinds import DELTA_CM, write_kinds

JPEG = EXAMPLES / "aul_liver_us_mini" / "images" / "malignant_010.jpg"
LOSSLESS = ("rgb", "ybr_full", "palette", "big_endian", "jpeg2000")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not JPEG.is_file():
        pytest.skip(f"{JPEG} missing")
    return write_kinds(JPEG, tmp_path_factory.mktemp("us_dicom"))


@pytest.mark.parametrize("kind", [*LOSSLESS, "jpeg_ybr_422"])
def test_each_kind_reads_as_the_jpegs_grey_with_spacing(kinds: dict[str, Path], kind: str):
    image = read_image(kinds[kind])
    reference = read_raster_array(JPEG)
    assert image.modality == "US" and image.pixels.shape == reference.shape
    tolerance = 0.51 if kind in LOSSLESS else 12.0  # luma rounding / JPEG 4:2:2 re-compression
    assert np.abs(image.pixels - reference).max() <= tolerance
    assert image.spacing == pytest.approx((DELTA_CM * 10, DELTA_CM * 10))  # cm → mm


def test_cine_every_frame_or_one(kinds: dict[str, Path]):
    cine = read_image(kinds["cine"])
    assert cine.pixels.shape[0] == 3
    one = read_image(kinds["cine"], frame=1)
    assert one.pixels.ndim == 2 and np.array_equal(one.pixels, read_raster_array(JPEG))
    from lesiondx.io import ImageReadError

    with pytest.raises(ImageReadError, match="frame 5 does not exist"):
        read_image(kinds["cine"], frame=5)


def test_shipped_us_liver_diagnoses_every_kind_like_the_jpeg(kinds: dict[str, Path]):
    from lesiondx.us_liver.task import predict

    names = [*LOSSLESS, "jpeg_ybr_422"]
    out = predict([JPEG, *(kinds[k] for k in names)], cam=False)
    probs = [r["probability"] for r in out["results"]]
    jpeg_p = probs[0]
    for kind, p in zip(names, probs[1:]):
        assert abs(p - jpeg_p) <= (0.01 if kind in LOSSLESS else 0.05), (kind, p, jpeg_p)
    first = out["results"][1]
    assert first["pixel_spacing_mm"] == pytest.approx([0.25, 0.25])
    box_w = first["box"][2] - first["box"][0]
    assert first["lesion_size_mm"]["width_mm"] == pytest.approx(box_w * 0.25, abs=0.05)
    assert out["results"][0]["lesion_size_mm"] is None  # a JPEG carries no spacing
    assert all(r["out_of_scope_flag"] is False for r in out["results"])
    from lesiondx.us_liver.inference import DEFAULT_MODEL

    if (DEFAULT_MODEL / "ood_stats.npz").is_file():  # an OOD score beside every probability
        assert all(r["ood"]["score"] is not None and r["ood"]["out_of_distribution"] is False for r in out["results"])


def test_cine_predicts_every_frame_or_the_chosen_one(kinds: dict[str, Path]):
    from lesiondx.us_liver.task import predict

    every = predict([kinds["cine"]], cam=False)["results"]
    assert [r["frame"] for r in every] == [0, 1, 2]
    chosen = predict([kinds["cine"]], cam=False, frame=1)["results"]
    assert len(chosen) == 1 and chosen[0]["probability"] == pytest.approx(every[1]["probability"], abs=1e-6)


def test_service_ingest_keeps_us_dicom_readable(kinds: dict[str, Path], tmp_path: Path):
    """What the REST / C-STORE ingest stores (de-identified, re-encoded) is what us-liver reads."""
    from lesiondx.service.ingest import accept_dataset, dataset_from_bytes
    from lesiondx.us_liver.inputs import read_us_inputs

    for kind in (*LOSSLESS, "cine"):
        accepted = accept_dataset(kinds[kind].name, dataset_from_bytes(kinds[kind].read_bytes()), "salt")
        stored = tmp_path / f"{kind}.dcm"
        stored.write_bytes(accepted.data)
        items = read_us_inputs([stored])
        assert len(items) == (3 if kind == "cine" else 1)
        assert items[0].spacing_mm == pytest.approx((0.25, 0.25))
        assert items[0].verdict.status == "ok"


def test_spacing_is_unknown_when_two_cm_regions_disagree():
    """A split screen at two depths: which region the lesion lies in is not known to the reader, so no mm spacing
    (a size from the wrong region would be wrong); regions that agree, or one region, give it."""
    from pydicom.dataset import Dataset

    from lesiondx.io.dicom import ultrasound_spacing

    def region(delta_cm: float, units: int = 3) -> Dataset:
        r = Dataset()
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = units
        r.PhysicalDeltaX = r.PhysicalDeltaY = delta_cm
        return r

    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [region(0.025), region(0.04)]
    assert ultrasound_spacing(ds) is None
    ds.SequenceOfUltrasoundRegions = [region(0.025), region(0.025), region(0.5, units=4)]  # + a spectral strip (s)
    assert ultrasound_spacing(ds) == pytest.approx((0.25, 0.25))
