"""Gate rules on synthetic images (labelled synthetic): verdict combination, HU, geometry, photometric,
and the out-of-scope flag surviving the service's result normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lesiondx.gate import Check, GateVerdict, InputRefused, combine, result_fields
from lesiondx.gate.checks import geometry_check, hu_check, modality_check, photometric_check
from lesiondx.io import MedicalImage


def test_combine_takes_the_worst_status_and_keeps_every_value():
    verdict = combine("ct-covid", [Check("a", "ok", 1), Check("b", "flagged", 2, "odd"), Check("c", "ok", 3)])
    assert verdict.status == "flagged" and verdict.reasons == ("odd",)
    assert verdict.checks["c"]["value"] == 3
    out = verdict.to_dict()
    assert out["out_of_scope_flag"] is True and out["validated_on_input"] is False
    refused = combine("ct-covid", [Check("a", "flagged", 1, "odd"), Check("b", "refused", 2, "wrong")])
    assert refused.status == "refused" and refused.reasons == ("odd", "wrong")
    error = InputRefused(Path("/x/study"), refused)
    assert "study" in str(error) and "refused for task ct-covid" in str(error) and "wrong" in str(error)


def _ct(pixels: np.ndarray, **kw) -> MedicalImage:
    return MedicalImage(pixels=pixels.astype(np.float32), modality="CT", is_hu=True, **kw)


def test_hu_check_refuses_values_that_are_not_hounsfield_units():
    assert hu_check(_ct(np.full((2, 32, 32), 1500.0))).status == "refused"  # raw detector values
    body = np.full((2, 32, 32), -1000.0)
    body[:, 8:24, 8:24] = 40.0
    assert hu_check(_ct(body)).status == "ok"
    assert hu_check(MedicalImage(pixels=np.zeros((8, 8)))).status == "ok"  # 8-bit: not judged


def test_geometry_flags_gaps_tilt_and_too_few_slices():
    pixels = np.zeros((5, 16, 16))
    even = _ct(pixels, positions=(0, -2, -4, -6, -8), spacing=(2, 0.7, 0.7), orientation=(1, 0, 0, 0, 1, 0))
    assert geometry_check(even, min_slices=3).status == "ok"
    gap = _ct(pixels, positions=(0, -2, -4, -16, -18), spacing=(2, 0.7, 0.7))
    assert "gap" in geometry_check(gap).reason
    sagittal = _ct(pixels, orientation=(0, 1, 0, 0, 0, -1))
    assert "not axial" in geometry_check(sagittal).reason
    assert geometry_check(_ct(pixels[:2]), min_slices=3).status == "flagged"


def test_dicom_modality_decides_without_the_probe():
    assert modality_check(MedicalImage(pixels=np.zeros((8, 8)), modality="MR"), "CT").status == "refused"
    assert modality_check(MedicalImage(pixels=np.zeros((8, 8)), modality="US"), "US").status == "ok"
    assert modality_check(MedicalImage(pixels=np.zeros((8, 8)), modality="CT"), "US").status == "refused"


def test_colour_and_colour_ct_are_flagged():
    doppler = MedicalImage(pixels=np.zeros((8, 8)), modality="US", metadata={"ColourFraction": "0.12"})
    assert photometric_check(doppler, greyscale_model=True).status == "flagged"
    screenshot = MedicalImage(pixels=np.zeros((8, 8)), modality="CT", metadata={"PhotometricInterpretation": "RGB"})
    assert photometric_check(screenshot, greyscale_model=False).status == "flagged"


def test_flag_survives_service_normalisation(tmp_path: Path):
    from lesiondx.service.results import normalize

    verdict = GateVerdict("us-liver", "flagged", ("odd",), {})
    output = {"task": "us-liver", "results": [{"image": "a.jpg", "probability": 0.7, **result_fields([verdict])}]}
    entries, raw = normalize(output, tmp_path, task="us-liver")
    assert entries[0]["details"]["out_of_scope_flag"] is True
    assert raw["results"][0]["gate"]["reasons"] == ["odd"]
    covid = {"patient": {"decision": 1, "score": 0.9}, **result_fields([verdict])}
    entries, _ = normalize(covid, tmp_path, task="ct-covid")
    assert entries[0]["details"]["out_of_scope_flag"] is True


@pytest.mark.parametrize("status", ["ok", "flagged"])
def test_result_fields_say_whether_the_input_was_validated(status: str):
    fields = result_fields([GateVerdict("ct-liver", status, (), {})], ("skipped LICENSE",))
    assert fields["validated_on_input"] is (status == "ok")
    assert fields["input_warnings"] == ["skipped LICENSE"]


def test_ood_statistics_separate_far_points_and_keep_the_false_alarm_rate_near_the_quantile(tmp_path: Path):
    from lesiondx.gate.ood import fit_ood, load_stats, save_stats

    rng = np.random.default_rng(0)
    cov = rng.normal(size=(40, 40))
    train = rng.normal(size=(400, 40)) @ cov  # synthetic correlated features
    stats = fit_ood(train, n_components=40, neighbours=5)
    held = stats.score(rng.normal(size=(400, 40)) @ cov)
    assert 0.0 <= float((held > stats.threshold).mean()) <= 0.06  # ~1 % expected at the 99th percentile
    shifted = stats.score((rng.normal(size=(50, 40)) + 12 * np.eye(40)[0]) @ cov)  # 12 SD along one latent axis
    assert float((shifted > stats.threshold).mean()) >= 0.9
    save_stats(stats, tmp_path / "s.npz", {"synthetic": True})
    again = load_stats(tmp_path / "s.npz")
    assert again is not None and again.threshold == pytest.approx(stats.threshold)
    assert np.allclose(again.score(train[:5]), stats.score(train[:5]), atol=1e-2 * stats.threshold)
    assert load_stats(tmp_path / "absent.npz") is None


@pytest.mark.parametrize(("positions", "status"), [
    (tuple(np.arange(12) * 2.0), "ok"), (tuple(np.arange(12) * 5.0), "ok"), (tuple(np.arange(12) * 7.5), "flagged"),
    (None, "ok"), ((0.0, 8.0), "ok")])  # slice images without positions, or two slices: cannot be judged
def test_ct_covid_flags_slices_thicker_than_the_rule_was_validated_on(positions, status):
    from lesiondx.gate.ct_covid import slice_step_check

    n = len(positions) if positions is not None else 12
    image = MedicalImage(pixels=np.zeros((n, 8, 8), np.float32), modality="CT", positions=positions)
    result = slice_step_check(image)
    assert result.status == status
    if status == "flagged":
        assert result.value["slice_step_mm"] == 7.5 and "7.5 mm apart" in result.reason
