"""One "k evenly spread indices" for the CT gates and DICOM ingest (``io.series.spread_indices``); the gates' sampling
is pinned to what it was before the two copies became one."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.io.series import spread_indices


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 39, 40, 41, 133, 154, 532, 1064])
@pytest.mark.parametrize("k", [1, 3, 5, 40])
def test_ends_included_is_the_gates_sampling_as_before(n, k):
    """The expression gate/ct_covid.sampled_slices and gate/ct_liver used (first and last slice included)."""
    before = np.unique(np.linspace(0, n - 1, min(n, k)).astype(int)).tolist()
    assert spread_indices(n, k) == before


@pytest.mark.parametrize("n", [10, 133, 154, 1064])
def test_inner_points_stay_off_both_ends_and_are_spread(n):
    frames = spread_indices(n, 5, ends=False)
    assert len(frames) == 5 and frames == sorted(frames) and 0 < frames[0] and frames[-1] < n - 1
    assert spread_indices(n, 5, ends=False) == frames  # deterministic
    assert frames[2] in (n // 2 - 1, n // 2)  # the middle one is the middle of the series


def test_fewer_items_than_asked_gives_every_index():
    assert spread_indices(3, 5, ends=False) == [0, 1, 2] and spread_indices(3, 5) == [0, 1, 2]
    assert spread_indices(0, 5) == [] and spread_indices(1, 5, ends=False) == [0]


def test_the_gates_and_ingest_have_no_copy_of_their_own():
    import lesiondx.gate.ct_covid as gate
    import lesiondx.service.ingest as ingest

    assert not hasattr(gate, "sampled_slices") and not hasattr(ingest, "_spread")
    assert gate.spread_indices is spread_indices and ingest.spread_indices is spread_indices
