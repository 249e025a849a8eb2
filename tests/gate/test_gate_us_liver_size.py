"""The us-liver gate flags a frame smaller than every AUL frame the model was trained on (a real AUL frame
downscaled to 300×225 px, the size of the external teaching frames that scored AUC ≈ 0.48), and leaves the
smallest training size alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lesiondx.gate import check
from lesiondx.io import read_image
from lesiondx_testdata import EXAMPLES

US_JPEG = EXAMPLES / "aul_liver_us_mini" / "images" / "malignant_010.jpg"


@pytest.mark.parametrize(("size", "status"), [((300, 225), "flagged"), ((420, 315), "flagged"),
                                              ((440, 341), "ok"), ((1024, 768), "ok")])
def test_us_liver_gate_flags_frames_smaller_than_the_training_frames(tmp_path: Path, size: tuple, status: str):
    if not US_JPEG.is_file():
        pytest.skip(f"{US_JPEG} missing")
    path = tmp_path / f"frame_{size[0]}.png"
    with Image.open(US_JPEG) as img:
        img.convert("RGB").resize(size).save(path)
    verdict = check("us-liver", read_image(path))
    assert verdict.status == status, verdict.reasons
    if status == "flagged":
        assert verdict.checks["size"]["status"] == "flagged" and f"{size[0]}×{size[1]} px" in verdict.reasons[0]
        assert "not validated" in verdict.reasons[0]
