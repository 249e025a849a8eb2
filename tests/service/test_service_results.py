"""Normalisation of the task modules' predict() outputs into the service's result entries."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lesiondx.service.results import normalize


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(path)
    return path


def test_us_liver_shape_with_numpy_values_and_paths(tmp_path):
    overlay = _png(tmp_path / "out/overlay.png")
    output = {"results": [{"image": "a.jpg", "box": np.array([1, 2, 3, 4]), "probability": np.float32(0.25),
                           "label": "benign", "threshold": 0.5, "overlay": overlay, "model_version": "m1"}]}
    entries, raw = normalize(output, tmp_path / "results")
    (entry,) = entries
    assert entry["probability"] == pytest.approx(0.25) and isinstance(entry["probability"], float)
    assert entry["boxes"] == [[1, 2, 3, 4]] and entry["overlays"] == ["overlay.png"]
    assert (tmp_path / "results/overlay.png").is_file() and raw["results"][0]["overlay"] == "overlay.png"


def test_ct_liver_shape_boxes_from_lesions_and_name_collisions(tmp_path):
    a, b = _png(tmp_path / "out/s1/overlay.png"), _png(tmp_path / "out/s2/overlay.png")
    output = {"patient": {"probability": 0.9, "label": "liver lesion", "model_version": "liver-2"},
              "lesions": [{"box": [10, 10, 20, 20], "slice": 3, "probability": 0.8}, {"bbox": [1, 1, 2, 2]}],
              "overlays": [str(a), str(b)], "volume_ml": float("nan")}
    entries, raw = normalize(output, tmp_path / "results")
    (entry,) = entries
    assert entry["label"] == "liver lesion" and entry["model_version"] == "liver-2" and entry["probability"] == 0.9
    assert [b["box"] for b in entry["boxes"]] == [[10, 10, 20, 20], [1, 1, 2, 2]] and entry["boxes"][0]["slice"] == 3
    assert entry["overlays"] == ["overlay.png", "overlay-2.png"]  # two different files keep two names
    assert raw["volume_ml"] is None


def test_ct_covid_shape_keeps_slices(tmp_path):
    output = {"patient": {"probability": 0.7, "label": "COVID-19"}, "slices": [{"index": 0, "probability": 0.1}],
              "overlays": [], "model_version": "covid-1"}
    (entry,), _ = normalize(output, tmp_path / "results")
    assert entry["slices"] == [{"index": 0, "probability": 0.1}] and entry["model_version"] == "covid-1"


def test_non_dict_output_is_an_error(tmp_path):
    with pytest.raises(TypeError, match="expected a dict"):
        normalize([0.5], tmp_path)


def test_ct_covid_decision_score_and_slice_boxes(tmp_path):
    """The shape of lesiondx.ct_covid.task.predict: decision/score instead of label/probability."""
    series = tmp_path / "work/series_01"
    series.mkdir(parents=True)
    overlay = _png(tmp_path / "work/out/slice_004.png")
    output = {"input": str(series), "n_slices": 10,
              "patient": {"decision": 1, "score": 0.83, "rule": {"k_consecutive": 3}},
              "slices": [{"slice": 3, "probability": 0.2, "boxes": []},
                         {"slice": 4, "probability": 0.9, "boxes": [{"box": [5, 6, 7, 8], "quadrant": "RU", "score": 0.9}]}],
              "overlays": [str(overlay)], "model_version": "covid-7", "seconds": {"decode_s": 0.1}}
    (entry,), raw = normalize(output, tmp_path / "results", task="ct-covid",
                              inputs={str(series): "series of 10 slices"})
    assert entry["label"] == "COVID-19" and entry["probability"] == 0.83 and entry["model_version"] == "covid-7"
    assert entry["boxes"] == [{"slice": 4, "box": [5, 6, 7, 8], "quadrant": "RU", "score": 0.9}]
    assert entry["overlays"] == ["slice_004.png"] and raw["input"] == "series of 10 slices"
    output["patient"]["decision"] = 0
    (entry,), _ = normalize(output, tmp_path / "results2", task="ct-covid")
    assert entry["label"] == "normal"
