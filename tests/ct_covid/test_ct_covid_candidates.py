"""The candidate-level false-positive filter and the leave-one-patient-out setting choice (synthetic volumes,
labelled synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_covid.candidates import FEATURES, CandidateFilter, fit_filter, part_features
from lesiondx.io import grey_to_hu
from lesiondx.ct_covid.config import read_config
from lesiondx.ct_covid.lopo import choose
from lesiondx.ct_covid.rule import RuleSettings, kept_lesions, patient_rule


def _synthetic_volume(n_slices: int = 5):
    """Synthetic: aerated lung (-850 HU) with a ground-glass blob (-550 HU, lower right) and a solid
    soft-tissue mass (40 HU, upper left), both segmented with probability 0.9 on every slice."""
    hu = np.full((n_slices, 64, 64), -850.0, np.float32)
    probs = np.zeros_like(hu)
    yy, xx = np.mgrid[:64, :64]
    ggo = (yy - 44) ** 2 + (xx - 46) ** 2 <= 36
    mass = (yy - 16) ** 2 + (xx - 16) ** 2 <= 36
    hu[:, ggo], hu[:, mass] = -550.0, 40.0
    probs[:, ggo | mass] = 0.9
    return hu, probs, ggo, mass


def test_features_tell_ground_glass_from_a_solid_mass():
    hu, probs, ggo, mass = _synthetic_volume(1)
    parts = np.zeros(hu.shape, np.int32)
    parts[0][ggo], parts[0][mass] = 1, 2
    f = dict(zip(FEATURES, part_features(parts, 2, hu, probs).T))
    assert f["solid_frac"][1] == 0 and f["solid_frac"][2] == 1
    assert f["ggo_frac"][1] == 1 and f["ggo_frac"][2] == 0
    assert f["mean_hu"][1] == pytest.approx(-0.55) and f["mean_hu"][2] == pytest.approx(0.04)
    assert f["ring_hu"][1] == pytest.approx(-0.85)  # surrounded by aerated lung
    assert f["log_area_px"][1] == pytest.approx(np.log(ggo.sum()))
    assert np.allclose(f["mean_prob"][1:], 0.9)


def test_grey_to_hu_inverts_the_lung_window():
    cfg = read_config()
    assert grey_to_hu(np.array([0.0, 255.0]), (cfg.window_center, cfg.window_width)) == pytest.approx([-1150, 250])


def _solid_rejecting_filter(threshold: float = 0.5) -> CandidateFilter:
    """Fitted on noisy copies of the synthetic volume's two candidates: ground glass = lesion, mass = not."""
    hu, probs, ggo, mass = _synthetic_volume(1)
    parts = np.zeros(hu.shape, np.int32)
    parts[0][ggo], parts[0][mass] = 1, 2
    base = part_features(parts, 2, hu, probs)[1:]
    rng = np.random.default_rng(0)
    x = np.repeat(base, 20, axis=0) + rng.normal(0, 0.05, (40, len(FEATURES)))
    return fit_filter(x, np.repeat([1, 0], 20), threshold=threshold)


def test_the_filter_drops_the_mass_and_keeps_the_ground_glass_in_the_rule():
    hu, probs, ggo, mass = _synthetic_volume()
    filt = _solid_rejecting_filter()
    plain = RuleSettings(k=3, threshold=0.5, min_area_px=10)
    filtered = RuleSettings(k=3, threshold=0.5, min_area_px=10, keep=filt.keeper(hu, probs))
    kept = kept_lesions(probs, filtered)
    assert kept[:, ggo].all() and not kept[:, mass].any()
    assert kept_lesions(probs, plain)[:, mass].all()
    # with the ground glass gone too, the mass alone no longer makes the patient positive
    probs_mass_only = np.where(ggo[None], 0.0, probs)
    assert patient_rule(probs_mass_only, plain).decision == 1
    d = patient_rule(probs_mass_only, RuleSettings(k=3, threshold=0.5, min_area_px=10,
                                                   keep=filt.keeper(hu, probs_mass_only)))
    assert d.decision == 0 and d.score < 0.5


def test_filter_file_round_trip_and_bad_file(tmp_path):
    filt = _solid_rejecting_filter(0.3)
    path = filt.to_json(tmp_path / "f.json")
    again = CandidateFilter.from_json(path)
    x = np.random.default_rng(1).normal(size=(5, len(FEATURES)))
    assert np.allclose(again.probability(x), filt.probability(x)) and again.threshold == 0.3
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        CandidateFilter.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="both"):
        fit_filter(np.zeros((3, len(FEATURES))), np.ones(3))


def test_config_rejects_a_bad_filter_threshold():
    with pytest.raises(ValueError, match="filter_threshold"):
        read_config(filter_threshold=1.0)


def _table(rows):
    return pd.DataFrame(rows, columns=["prob", "floor_mm", "k", "filter_t", "medseg_recall", "wrong"])


def test_setting_choice_is_the_least_strict_feasible_one():
    table = _table([(0.5, 5.0, 3, 0.0, 0.95, 1),   # least strict but a training patient wrong
                    (0.5, 5.0, 3, 0.5, 0.50, 0),   # feasible on patients, loses too much MedSeg recall
                    (0.7, 10.0, 3, 0.3, 0.90, 0),
                    (0.5, 15.0, 5, 0.3, 0.90, 0),  # same recall, stricter k
                    (0.9, 5.0, 3, 0.0, 0.85, 0)])
    best = choose(table, baseline_recall=0.95)
    assert (best["prob"], best["floor_mm"], best["k"], best["filter_t"]) == (0.7, 10.0, 3, 0.3)
    assert bool(best["feasible"])


def test_setting_choice_without_a_feasible_setting_minimises_training_errors():
    table = _table([(0.5, 5.0, 3, 0.0, 0.95, 2), (0.7, 5.0, 3, 0.0, 0.90, 1), (0.9, 5.0, 3, 0.0, 0.80, 1)])
    best = choose(table, baseline_recall=0.95)
    assert best["prob"] == 0.7 and not bool(best["feasible"])
