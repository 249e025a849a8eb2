"""The candidate-level false-positive filter and the leave-one-patient-out setting choice (synthetic volumes,
labelled synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_covid.candidates import (BASE_FEATURES, FEATURES, FILTER_FILE, CandidateFilter, fit_filter,
                                          hull_areas, part_features, select)
from lesiondx.io import grey_to_hu
from lesiondx.ct_covid.config import read_config
from lesiondx.ct_covid.lopo import choose
from lesiondx.ct_covid.model import default_model_dir
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


def _one_slice(mask: np.ndarray, hu_inside, hu_outside: float = -850.0):
    """Synthetic: one slice of aerated lung with one candidate ``mask`` (probability 0.9)."""
    hu = np.where(mask, hu_inside, hu_outside).astype(np.float32)[None]
    return mask.astype(np.int32)[None], 1, hu, (mask * 0.9).astype(np.float32)[None]


def test_shape_features_tell_a_round_convex_mass_from_an_irregular_or_elongated_patch():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 100
    crescent = disc & ((yy - 32) ** 2 + (xx - 38) ** 2 > 64)  # a disc with a bite out of it: concave
    bar = (abs(yy - 32) <= 1) & (abs(xx - 32) <= 15)  # 3 x 31: convex but elongated
    f = {name: dict(zip(FEATURES, part_features(*_one_slice(m, -550.0))[1])) for name, m in
         (("disc", disc), ("crescent", crescent), ("bar", bar))}
    assert f["disc"]["solidity"] > 0.9 and f["crescent"]["solidity"] < 0.75
    assert f["bar"]["solidity"] == pytest.approx(1.0)  # a rectangle is its own hull
    assert f["disc"]["axis_ratio"] == pytest.approx(1.0, abs=0.01)
    assert f["bar"]["axis_ratio"] == pytest.approx(3 / 31, rel=0.02)  # √(λmin/λmax) of a 3 × 31 rectangle
    # and none of them depends on size: the same disc at twice the radius
    big = (yy - 32) ** 2 + (xx - 32) ** 2 <= 400
    g = dict(zip(FEATURES, part_features(*_one_slice(big, -550.0))[1]))
    assert g["solidity"] == pytest.approx(f["disc"]["solidity"], abs=0.05)
    assert g["axis_ratio"] == pytest.approx(1.0, abs=0.01)


def test_hull_areas_of_pixel_squares():
    parts = np.zeros((1, 8, 8), np.int32)
    parts[0, 1, 1] = 1  # one pixel
    parts[0, 4:6, 2:7] = 2  # a 2 x 5 rectangle
    parts[0, 0, 5], parts[0, 1, 6] = 3, 3  # two diagonal pixels: a hexagon of area 3
    assert hull_areas(parts, 4)[1:] == pytest.approx([1.0, 10.0, 3.0])


def test_core_and_margin_features_tell_a_solid_sharp_mass_from_fading_ground_glass():
    yy, xx = np.mgrid[:64, :64]
    r = np.sqrt((yy - 32.0) ** 2 + (xx - 32.0) ** 2)
    disc = r <= 10
    mass = _one_slice(disc, 40.0)  # uniform soft tissue, sharp edge
    fading = _one_slice(disc, np.clip(-300.0 - 50.0 * r, -850.0, None))  # densest centre, fades to the lung
    m, g = (dict(zip(FEATURES, part_features(*x)[1])) for x in (mass, fading))
    assert m["hu_p90"] == pytest.approx(0.04) and g["hu_p90"] < -0.3
    expected = np.percentile(fading[2][0][disc], 90) / 1000
    assert g["hu_p90"] == pytest.approx(expected)
    assert m["edge_step"] == pytest.approx(0.89)  # 40 HU band against a -850 HU ring
    assert 0 < g["edge_step"] < 0.15


def test_a_feature_subset_gives_the_same_columns_and_the_base_filter_file_keeps_loading(tmp_path):
    hu, probs, ggo, mass = _synthetic_volume(2)
    parts = np.zeros(hu.shape, np.int32)
    parts[:, ggo], parts[:, mass] = 1, 2
    full = part_features(parts, 2, hu, probs)
    assert np.array_equal(part_features(parts, 2, hu, probs, BASE_FEATURES), full[:, :len(BASE_FEATURES)])
    pair = ("edge_step", "mean_hu")
    assert np.array_equal(part_features(parts, 2, hu, probs, pair), select(full, pair))
    shipped = default_model_dir() / FILTER_FILE
    if shipped.is_file():
        filt = CandidateFilter.from_json(shipped)
        assert set(filt.names) <= set(FEATURES)
        assert filt.keeper(hu, probs)(parts, 2).shape == (3,)
        with pytest.raises(ValueError, match="features"):
            filt.probability(full if len(filt.names) != len(FEATURES) else full[:, :3])
    bad = _solid_rejecting_filter().to_json(tmp_path / "f.json")
    (tmp_path / "unknown.json").write_text(bad.read_text().replace('"solidity"', '"roundness"'))
    with pytest.raises(ValueError, match=r"unknown.json.*roundness"):
        CandidateFilter.from_json(tmp_path / "unknown.json")


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
