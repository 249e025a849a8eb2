"""LOPO cache of segmenter outputs: stamped with the segmenter and data, never reused for another segmenter."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lesiondx.ct_covid.lopo import cache_stamp, read_cache, write_cache


def _stamp(tmp_path: Path, weights: bytes) -> dict:
    ckpt = tmp_path / weights.decode() / "model.pt"
    ckpt.parent.mkdir(exist_ok=True)
    ckpt.write_bytes(weights)
    return cache_stamp(ckpt, None, [tmp_path / "series"], tmp_path / "medseg")


def test_cache_round_trips_for_its_segmenter_and_refuses_another(tmp_path: Path):
    shipped, other = _stamp(tmp_path, b"lite0"), _stamp(tmp_path, b"mnv2")
    path = tmp_path / "cache.pkl"
    assert read_cache(path, shipped, True) is None
    write_cache(path, shipped, ("patients", "train", "test"))
    assert read_cache(path, shipped, True) == ("patients", "train", "test")
    with pytest.raises(ValueError, match=r"cache.pkl: cache written for another segmenter .*\['model'\]"):
        read_cache(path, other, False)
    moved = cache_stamp(tmp_path / "lite0" / "model.pt", None, [tmp_path / "elsewhere"], tmp_path / "medseg")
    with pytest.raises(ValueError, match=r"\['series'\]"):
        read_cache(path, moved, True)


def test_unstamped_cache_is_the_shipped_segmenters_only(tmp_path: Path):
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(("patients", "train", "test")))
    stamp = _stamp(tmp_path, b"mnv2")
    assert read_cache(path, stamp, True) == ("patients", "train", "test")
    with pytest.raises(ValueError, match="old.pkl: unstamped cache of the shipped segmenter"):
        read_cache(path, stamp, False)
