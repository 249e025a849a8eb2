import numpy as np
import pytest

from lesiondx.ct_liver.config import DEFAULT_TREE
from lesiondx.ct_liver.label_tree import LabelTree


@pytest.fixture
def tree() -> LabelTree:
    return LabelTree.from_mapping(DEFAULT_TREE)


def test_levels_and_classes(tree):
    assert tree.top == ("malignant", "benign")
    assert tree.leaves == ("HCC", "ICC", "MET", "FNH", "HEM", "cyst")
    assert tree.level_for(["benign", "malignant"]) == "top"  # only the top level labelled: train only that
    assert tree.level_for(["benign", "HCC"]) == "leaf"
    with pytest.raises(ValueError, match="adenoma"):
        tree.level_for(["adenoma"])


def test_allowed_sets_follow_the_tree(tree):
    allowed = tree.allowed(["HCC", "benign", "cyst"], "leaf")
    assert allowed[0].tolist() == [True, False, False, False, False, False]
    assert allowed[1].tolist() == [False, False, False, True, True, True]  # top label → all its leaves
    assert allowed[2].tolist() == [False, False, False, False, False, True]
    assert tree.allowed(["MET", "FNH"], "top").tolist() == [[True, False], [False, True]]


def test_top_probabilities_sum_subtrees(tree):
    leaf = np.array([[0.1, 0.2, 0.3, 0.1, 0.2, 0.1]])
    top = tree.top_probabilities(leaf, "leaf")
    np.testing.assert_allclose(top, [[0.6, 0.4]])
    row = tree.describe(leaf, "leaf")[0]
    assert row["malignant"] == pytest.approx(0.6) and row["HEM"] == pytest.approx(0.2)


def test_bad_trees_are_rejected():
    with pytest.raises(ValueError, match="two top-level"):
        LabelTree.from_mapping({"malignant": ["HCC"]})
    with pytest.raises(ValueError, match="repeats"):
        LabelTree.from_mapping({"malignant": ["HCC"], "benign": ["HCC"]})
