"""One-vs-rest AUC and image-to-patient aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lesiondx.stats import aggregate_binary, aggregate_multiclass, one_vs_rest_auc, softmax


def test_one_vs_rest_matches_sklearn_and_is_reproducible():
    rng = np.random.default_rng(4)
    classes = ["covid", "normal", "other"]
    y = rng.choice(classes, 150)
    logits = rng.normal(size=(150, 3)) + np.stack([y == c for c in classes], axis=1) * 1.5
    proba = softmax(logits, axis=1)
    res = one_vs_rest_auc(y, proba, classes, n_boot=200, seed=1)
    for j, c in enumerate(classes):
        assert res.per_class[c].auc == pytest.approx(roc_auc_score(y == c, proba[:, j]), abs=1e-12)
    macro = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    assert res.macro.estimate == pytest.approx(macro, abs=1e-12)
    assert res.macro.ci_low < res.macro.estimate < res.macro.ci_high
    assert one_vs_rest_auc(y, proba, classes, n_boot=200, seed=1).macro == res.macro


def test_one_vs_rest_rejects_unknown_labels_and_bad_shape():
    with pytest.raises(ValueError, match="not in classes"):
        one_vs_rest_auc(["a", "b", "z"], np.eye(3)[:, :2], ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        one_vs_rest_auc(["a", "b"], np.ones((2, 3)), ["a", "b"])


@pytest.fixture
def images():
    return pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", "p2", "p2", "p3"],
            "label": [1, 1, 0, 0, 0, 1],
            "score": [0.2, 0.8, 0.1, 0.3, 0.5, 0.9],
        }
    )


@pytest.mark.parametrize(
    "rule, threshold, expected",
    [
        ("mean", None, [0.5, 0.3, 0.9]),
        ("max", None, [0.8, 0.5, 0.9]),
        ("any", 0.6, [1.0, 0.0, 1.0]),
    ],
)
def test_aggregate_binary_rules(images, rule, threshold, expected):
    out = aggregate_binary(images, "patient_id", rule=rule, threshold=threshold)
    assert out["patient_id"].tolist() == ["p1", "p2", "p3"]
    np.testing.assert_allclose(out["score"], expected)
    assert out["n_images"].tolist() == [2, 3, 1] and out["label"].tolist() == [1, 0, 1]


def test_aggregate_rejects_inconsistent_patient_label(images):
    bad = images.assign(label=[1, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="not constant"):
        aggregate_binary(bad, "patient_id")
    with pytest.raises(ValueError, match="threshold"):
        aggregate_binary(images, "patient_id", rule="any")


def test_aggregate_multiclass_softmax_of_means():
    df = pd.DataFrame({"pid": ["a", "a", "b"], "c0": [1.0, 3.0, 0.0], "c1": [0.0, 0.0, 2.0], "label": ["x", "x", "y"]})
    out = aggregate_multiclass(df, "pid", ["c0", "c1"])
    np.testing.assert_allclose(out[["c0", "c1"]].to_numpy(), softmax(np.array([[2.0, 0.0], [0.0, 2.0]]), axis=1))
    assert out["predicted"].tolist() == ["c0", "c1"]
    np.testing.assert_allclose(out[["c0", "c1"]].sum(axis=1), 1.0)
    mean = aggregate_multiclass(df, "pid", ["c0", "c1"], method="mean")
    np.testing.assert_allclose(mean["c0"], [2.0, 0.0])
