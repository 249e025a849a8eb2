import numpy as np
import pytest

from lesiondx.ct_covid.rule import RuleSettings, lesion_quadrant_sets, longest_run, patient_rule

UL, UR, LL = "upper-left", "upper-right", "lower-left"


def _blob(probs: np.ndarray, slices: range, row: int, col: int, radius: int, value: float) -> None:
    yy, xx = np.ogrid[: probs.shape[1], : probs.shape[2]]
    disk = (yy - row) ** 2 + (xx - col) ** 2 <= radius**2
    for i in slices:
        probs[i][disk] = value


def test_longest_run_resets_on_quadrant_change_gap_and_empty_slice():
    assert longest_run([set(), {UL}, {UL, UR}, {UL}, set()]) == (UL, 3, (1, 3))
    assert longest_run([{UL}, {UL}, {UR}, {UR}])[1] == 2
    assert longest_run([{UL}, {UL}, {UL}], positions=[4, 5, 7]) == (UL, 2, (4, 5))
    assert longest_run([{UL}, {UL}, set(), {UL}, {UL}])[1] == 2
    with pytest.raises(ValueError, match="increasing"):
        longest_run([{UL}, {UL}], positions=[3, 2])


def test_lesion_counts_in_the_quadrant_of_its_centroid_and_small_parts_are_ignored():
    mask = np.zeros((2, 64, 64), dtype=bool)
    mask[0, 5:15, 40:50] = True  # 100 px, upper-right
    mask[0, 40:43, 5:8] = True  # 9 px, lower-left: below the size floor
    mask[1, 40:52, 2:14] = True  # 144 px, lower-left
    sets = lesion_quadrant_sets(mask, RuleSettings(min_area_px=50))
    assert sets == [{UR}, {LL}]
    # mid-lines moved right of the first lesion: it is now upper-left
    assert lesion_quadrant_sets(mask, RuleSettings(min_area_px=50, midlines=(32, 60)))[0] == {UL}


def test_three_slices_of_a_large_lesion_make_a_positive_patient_with_a_consistent_score():
    probs = np.zeros((6, 64, 64), dtype=np.float32)
    _blob(probs, range(1, 4), 16, 16, 6, 0.8)  # ~113 px on slices 1-3, upper-left
    settings = RuleSettings(k=3, threshold=0.5, min_area_px=50)
    result = patient_rule(probs, settings)
    assert (result.decision, result.quadrant, result.run, result.run_length) == (1, UL, (1, 3), 3)
    assert result.score == pytest.approx(0.8, abs=0.01)  # the highest threshold at which the rule holds
    # two slices only: negative, and the score stays below the decision threshold
    probs[3] = 0
    result = patient_rule(probs, settings)
    assert result.decision == 0 and result.score < settings.threshold


def test_small_blips_on_consecutive_slices_do_not_make_a_patient_positive():
    probs = np.zeros((5, 64, 64), dtype=np.float32)
    _blob(probs, range(0, 5), 16, 16, 3, 0.95)  # ~29 px per slice: a vessel-sized blip
    assert patient_rule(probs, RuleSettings(k=3, min_area_px=20)).decision == 1
    big_floor = patient_rule(probs, RuleSettings(k=3, min_area_px=50))
    assert big_floor.decision == 0 and big_floor.score == 0.0


def test_a_gap_in_positions_breaks_the_run_and_short_series_shorten_k():
    probs = np.zeros((3, 64, 64), dtype=np.float32)
    _blob(probs, range(0, 3), 40, 40, 6, 0.9)
    settings = RuleSettings(k=3, min_area_px=50)
    assert patient_rule(probs, settings, positions=[4, 5, 6]).decision == 1
    assert patient_rule(probs, settings, positions=[4, 5, 7]).decision == 0
    short = patient_rule(probs[:2], settings)
    assert short.k == 2 and short.decision == 1
    empty = patient_rule(np.zeros((0, 64, 64)), settings)
    assert empty.decision == 0 and empty.score == 0.0 and empty.run is None


def test_lesion_size_floor_is_a_physical_disk_when_spacing_is_known():
    from lesiondx.ct_covid.config import CovidConfig
    from lesiondx.ct_covid.pipeline import lesion_min_area_px
    from lesiondx.data import Box

    config = CovidConfig(input_size=256, min_area=20, min_lesion_diameter_mm=10.0)
    crop = Box(0, 0, 512, 512)  # 512 px at 0.5 mm squeezed into 256: 1 mm per map pixel
    assert lesion_min_area_px(config, crop, (0.5, 0.5)) == pytest.approx(np.pi / 4 * 100)
    assert lesion_min_area_px(config, crop, None) == 20  # no spacing (PNG slices): pixel floor only
    assert lesion_min_area_px(config, crop, (5.0, 5.0)) == 20  # never below the pixel floor
    with pytest.raises(ValueError, match="min_lesion_diameter_mm"):
        CovidConfig(min_lesion_diameter_mm=-1)


def test_robust_max_is_the_nth_largest_value_with_ties_at_zero():
    """The fast path (selection among the non-zero values) returns exactly the n-th largest of all values."""
    from lesiondx.ct_covid.pipeline import robust_max

    rng = np.random.default_rng(5)
    for trial in range(300):
        values = rng.random(int(rng.integers(1, 400))).astype(np.float32)
        values[rng.random(values.size) < rng.random()] = 0.0
        if trial % 3 == 0:
            values -= np.float32(0.4)
        for n in (1, 3, 20):
            expected = 0.0 if values.size < n else float(np.sort(values)[values.size - n])
            assert robust_max(values, n) == expected, (trial, n)
