"""Detection precision/recall/F1 with greedy IoU matching."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.stats import detection_prf, iou_matrix


def test_iou_by_hand():
    iou = iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])


def test_prf_per_iou_threshold_and_score_filter():
    truth = [np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.zeros((0, 4))]
    preds = [np.array([[2, 0, 12, 10], [50, 50, 58, 60], [80, 80, 90, 90], [0, 0, 10, 10]]), np.array([[1, 1, 5, 5]])]
    scores = [np.array([0.9, 0.8, 0.7, 0.1]), np.array([0.3])]
    out = detection_prf(preds, scores, truth)
    # IoUs: 0.667 and 0.8 with the true boxes; the 0.1-score duplicate is dropped; image 2 is a FP
    for thr in (0.1, 0.3, 0.5):
        r = out[thr]
        assert (r.tp, r.fp, r.fn) == (2, 2, 0)
        assert r.precision == 0.5 and r.recall == 1.0 and r.f1 == pytest.approx(2 / 3)
    strict = detection_prf(preds, scores, truth, iou_thresholds=(0.7,))[0.7]
    assert (strict.tp, strict.fp, strict.fn) == (1, 3, 1)


def test_greedy_highest_score_claims_box_first():
    truth = [np.array([[0, 0, 10, 10]])]
    preds = [np.array([[0, 0, 10, 9], [0, 0, 10, 10]])]
    r = detection_prf(preds, [np.array([0.9, 0.5])], truth, iou_thresholds=(0.5,))[0.5]
    assert (r.tp, r.fp, r.fn) == (1, 1, 0)


def test_detection_input_errors():
    with pytest.raises(ValueError, match="one entry per image"):
        detection_prf([np.zeros((0, 4))], [], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="x2 >= x1"):
        iou_matrix([[10, 0, 0, 10]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="scores"):
        detection_prf([np.array([[0, 0, 1, 1]])], [np.array([0.5, 0.6])], [np.zeros((0, 4))])
