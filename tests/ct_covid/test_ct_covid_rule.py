import numpy as np
import pytest

from lesiondx.ct_covid.rule import consecutive_rule, longest_run, window_score
from lesiondx.data import QUADRANTS

UL, UR = "upper-left", "upper-right"


def test_three_consecutive_slices_in_one_quadrant_make_a_positive_patient():
    decision = consecutive_rule([set(), {UL}, {UL, UR}, {UL}, set()], k=3)
    assert decision.decision == 1
    assert decision.quadrant == UL and decision.run == (1, 3) and decision.run_length == 3


def test_quadrant_change_resets_the_run():
    # lesions on 4 consecutive slices, but never 3 in a row in the same quadrant
    decision = consecutive_rule([{UL}, {UL}, {UR}, {UR}], k=3)
    assert decision.decision == 0
    assert decision.run_length == 2


def test_a_gap_in_slice_positions_resets_the_run():
    sets = [{UL}, {UL}, {UL}]
    assert consecutive_rule(sets, k=3, positions=[4, 5, 6]).decision == 1
    assert consecutive_rule(sets, k=3, positions=[4, 5, 7]).decision == 0
    assert longest_run(sets, positions=[4, 5, 7]) == (UL, 2, (4, 5))


def test_a_slice_without_lesion_resets_the_run():
    assert consecutive_rule([{UL}, {UL}, set(), {UL}, {UL}], k=3).decision == 0
    assert consecutive_rule([{UL}, {UL}, set(), {UL}, {UL}], k=2).decision == 1


def test_window_score_is_best_k_window_of_one_quadrant():
    scores = np.zeros((5, 4))
    scores[:, QUADRANTS.index(UL)] = [0.9, 0.8, 0.1, 0.95, 0.9]
    scores[:, QUADRANTS.index(UR)] = [0.2, 0.7, 0.6, 0.65, 0.1]
    # UL windows: min(.9,.8,.1)=.1, min(.8,.1,.95)=.1, min(.1,.95,.9)=.1; UR: .2, .6, .1 -> 0.6
    assert window_score(scores, 3) == pytest.approx(0.6)
    assert window_score(scores, 2) == pytest.approx(0.9)
    # a gap between positions 1 and 2 removes the UR window (.7, .6, .65)
    assert window_score(scores, 3, positions=[0, 1, 3, 4, 5]) == pytest.approx(0.1)


def test_patient_score_agrees_with_decision_and_short_series_shorten_k():
    scores = np.full((2, 4), 0.9)
    decision = consecutive_rule([{UL}, {UL}], scores, k=3)
    assert decision.k == 2 and decision.decision == 1 and decision.score == pytest.approx(0.9)
    empty = consecutive_rule([], np.zeros((0, 4)), k=3)
    assert empty.decision == 0 and empty.score == 0.0


def test_unordered_positions_are_rejected():
    with pytest.raises(ValueError, match="increasing"):
        consecutive_rule([{UL}, {UL}], k=2, positions=[3, 2])
