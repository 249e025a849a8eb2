"""ct-covid gate on real CT-MD slices (the bundled 10-slice P002 excerpt) and altered copies of them (synthetic)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom

from lesiondx.gate import check
from lesiondx.gate import ct_covid as gate_module
from lesiondx.io import read_study

EXCERPT = Path(__file__).resolve().parents[2] / "examples" / "covid_ct_md_mini" / "series" / "P002"


def test_lung_shares_are_measured_once_for_body_region_and_coverage(monkeypatch):
    excerpt = read_study(EXCERPT)
    standalone = gate_module.lung_coverage_check(excerpt).value
    calls: list[int] = []
    measure = gate_module.lung_fraction_hu
    monkeypatch.setattr(gate_module, "lung_fraction_hu", lambda s: calls.append(1) or measure(s))
    verdict = gate_module.gate(excerpt)
    assert len(calls) == excerpt.n_slices  # was 12: the two end slices measured again for the coverage check
    assert verdict.checks["lung_coverage"]["value"] == standalone
    assert verdict.checks["lung_coverage"]["status"] == "flagged"  # the excerpt stops inside the lungs at both ends


def test_a_ct_without_rescale_tags_is_refused_not_scaled_by_its_maximum(tmp_path):
    for source in sorted(EXCERPT.glob("*.dcm"))[:4]:
        ds = pydicom.dcmread(source)
        del ds.RescaleSlope, ds.RescaleIntercept  # altered copy: stored values 0..~2500, no HU
        ds.save_as(tmp_path / source.name)
    image = read_study(tmp_path)
    assert not image.is_hu and image.pixels.max() > 255
    verdict = check("ct-covid", image)  # was: every check ok; the model saw the stored values scaled by their maximum
    assert verdict.status == "refused" and verdict.checks["pixel_values"]["status"] == "refused"
    assert "RescaleSlope/RescaleIntercept" in verdict.checks["pixel_values"]["note"]
    assert check("ct-covid", read_study(EXCERPT)).checks["pixel_values"]["status"] == "ok"


def test_a_thin_slice_series_is_flagged_as_outside_the_validated_steps():
    """Real excerpt slices given the positions of a 0.6 mm reconstruction (altered): k consecutive slices span a few
    mm there (was: ok; only steps above 5 mm were flagged)."""
    excerpt = read_study(EXCERPT)
    thin = replace(excerpt, positions=tuple(-0.6 * i for i in range(excerpt.n_slices)))
    result = gate_module.slice_step_check(thin)
    assert result.status == "flagged" and "0.6 mm apart" in result.reason and "2–5 mm" in result.reason
    assert gate_module.slice_step_check(excerpt).status == "ok"  # CT-MD's own 2 mm
    assert check("ct-covid", thin).checks["slice_step"]["status"] == "flagged"


def test_a_coronal_reformat_is_refused(ctmd_folder):
    """Coronal slices resliced from the real P002 series (altered): was flagged only, and the model ran with axial
    lung zones and quadrants."""
    series = read_study(ctmd_folder / "series" / "P002")
    coronal = replace(series, pixels=series.pixels[:, 96:416:8, :].transpose(1, 0, 2).copy(),
                      orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0), positions=tuple(-4.8 * i for i in range(40)),
                      spacing=(4.8, 2.0, series.spacing[2]))
    verdict = check("ct-covid", coronal)
    assert verdict.status == "refused" and verdict.checks["plane"]["status"] == "refused"
    assert "coronal slices" in verdict.checks["plane"]["note"]
    assert check("ct-covid", read_study(EXCERPT)).checks["plane"]["status"] == "ok"


def _png_slices(folder: Path, window) -> Path:
    from PIL import Image

    from lesiondx.io import display_grey

    folder.mkdir()
    for i, hu in enumerate(read_study(EXCERPT).pixels):
        Image.fromarray(np.clip(display_grey(hu, True, window), 0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_png_slices_in_a_soft_tissue_window_are_refused(tmp_path):
    """The excerpt exported as 8-bit PNGs (altered copies): in the mediastinal window the lungs are black and ground
    glass cannot be seen (was: not refused, the model ran on them); in a lung window they pass."""
    soft = check("ct-covid", read_study(_png_slices(tmp_path / "mediastinum", "mediastinum")))
    assert soft.status == "refused" and soft.checks["window"]["status"] == "refused"
    assert "soft-tissue window" in soft.checks["window"]["note"]
    lung = check("ct-covid", read_study(_png_slices(tmp_path / "lung", "lung")))
    assert lung.checks["window"]["status"] == "ok" and lung.checks["window"]["value"]["lung_black_share"] == 0.0


def test_medseg_lung_window_slices_pass_the_window_check(medseg_folder):
    import pandas as pd

    from lesiondx.io import read_image

    rows = pd.read_csv(medseg_folder / "labels.csv").head(5)
    for image in rows["image"]:
        assert gate_module.window_check(read_image(medseg_folder / image)).status == "ok", image
