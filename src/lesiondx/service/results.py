"""Turn whatever a task's ``predict`` returned into the service's uniform result entries.

The task modules return different shapes (us-liver: ``{"results": [...]}``; ct-covid:
``{"patient", "slices", "overlays"}``; ct-liver: ``{"lesions", "patient"}``). Each becomes a list of
entries ``{"image", "probability", "label", "threshold", "p_lesion", "boxes", "model_version", "overlays",
"details"}`` (``p_lesion``: us-liver's lesion-presence probability, else None); image files the task wrote (overlays, heat maps) are copied into the study's result
folder and referred to by name, so they can be served at ``/api/studies/{id}/files/{name}``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PROBABILITY_KEYS = ("probability", "prob", "p_malignant", "p_covid", "score", "p")
BOX_KEYS = ("box", "bbox", "boxes", "bboxes")
LESION_KEYS = ("slice", "slice_index", "probability", "label", "score", "inside_liver", "location", "size_mm", "phase",
               "study")


DECISION_LABELS = {"ct-covid": ("normal", "COVID-19"), "ct-liver": ("no liver lesion", "liver lesion"),
                   "us-liver": ("benign", "malignant")}


class _FileCollector:
    """Copies referenced image files into the result folder under unique, safe names; paths of the
    job's own inputs are replaced by their display names (they are not overlays)."""

    def __init__(self, results_dir: Path, inputs: dict[str, str] | None = None) -> None:
        self.results_dir = results_dir
        results_dir.mkdir(parents=True, exist_ok=True)
        self.names: dict[Path, str] = {}
        self.inputs = dict(inputs or {})

    def input_name(self, value: str) -> str | None:
        return self.inputs.get(value) or self.inputs.get(value.rstrip("/"))

    def name_for(self, value: str) -> str | None:
        if not value or len(value) > 4096 or not value.lower().endswith(IMAGE_SUFFIXES):
            return None
        path = Path(value)
        try:
            if not path.is_file():
                return None
            path = path.resolve()
        except OSError:
            return None
        if path not in self.names:
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:80] or "overlay"
            name, n = f"{stem}{path.suffix.lower()}", 1
            while (self.results_dir / name).exists():  # the folder is emptied at the start of each job
                n += 1
                name = f"{stem}-{n}{path.suffix.lower()}"
            shutil.copyfile(path, self.results_dir / name)
            self.names[path] = name
        return self.names[path]


def jsonable(value: Any, collector: _FileCollector | None = None, found: list[str] | None = None) -> Any:
    """A JSON-safe copy: numpy scalars/arrays → Python, NaN → None, Paths → result file names."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, collector, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, collector, found) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist(), collector, found)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (bool, int)) or value is None:
        return value
    if isinstance(value, (str, Path)):
        text = str(value)
        if collector is not None:
            shown = collector.input_name(text)
            if shown is not None:
                return shown
            name = collector.name_for(text)
            if name is not None:
                if found is not None and name not in found:
                    found.append(name)
                return name
        return text
    return str(value)


def _probability(entry: dict[str, Any]) -> float | None:
    for key in PROBABILITY_KEYS:
        value = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _boxes(entry: dict[str, Any]) -> list[Any]:
    boxes: list[Any] = []
    for key in BOX_KEYS:
        value = entry.get(key)
        if value is None:
            continue
        if key in ("box", "bbox") and isinstance(value, (list, dict)) and not (
                isinstance(value, list) and value and isinstance(value[0], (list, dict))):
            boxes.append(value)
        elif isinstance(value, list):
            boxes.extend(value)
    for item in entry.get("slices") or []:
        if isinstance(item, dict):
            for box in item.get("boxes") or []:
                if isinstance(box, dict) and box.get("box") is not None:
                    boxes.append({"slice": item.get("slice", item.get("index")), **box})
    for lesion in entry.get("lesions") or []:
        if isinstance(lesion, dict):
            box = next((lesion[k] for k in ("box", "bbox") if lesion.get(k) is not None), None)
            if box is not None:
                boxes.append({"box": box, **{k: lesion[k] for k in LESION_KEYS if k in lesion}})
    return boxes


def _label(raw: dict[str, Any], task: str | None) -> str | None:
    if raw.get("label") is not None:
        return str(raw["label"])
    decision = raw.get("decision")
    if task in DECISION_LABELS and isinstance(decision, (bool, int)) and int(decision) in (0, 1):
        return DECISION_LABELS[task][int(decision)]
    return None


def _entry(raw: dict[str, Any], overlays: list[str], model_version: Any, image: Any = None,
           task: str | None = None) -> dict[str, Any]:
    return {
        "image": raw.get("image", image),
        "probability": _probability(raw),
        "label": _label(raw, task),
        "threshold": raw.get("threshold") if isinstance(raw.get("threshold"), (int, float)) else None,
        "p_lesion": raw.get("p_lesion") if isinstance(raw.get("p_lesion"), (int, float)) else None,  # us-liver
        "boxes": _boxes(raw),
        "location": raw.get("location") if isinstance(raw.get("location"), str) else None,  # patient terms
        "model_version": raw.get("model_version") or model_version,
        "overlays": overlays,
        "details": raw,
    }


def normalize(output: Any, results_dir: Path, *, task: str | None = None,
              inputs: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Uniform result entries plus the JSON-safe raw output (file paths replaced by result names).

    ``inputs`` maps the paths handed to the predictor to display names (so an echoed input path
    is shown as the uploaded file's name, never copied as an overlay); ``task`` turns a 0/1
    ``decision`` into the task's label when no ``label`` is given.
    """
    if not isinstance(output, dict):
        raise TypeError(f"predictor returned {type(output).__name__}, expected a dict")
    collector = _FileCollector(results_dir, inputs)
    version = output.get("model_version")
    entries: list[dict[str, Any]] = []
    if isinstance(output.get("results"), list):
        for item in output["results"]:
            found: list[str] = []
            clean = jsonable(item if isinstance(item, dict) else {"value": item}, collector, found)
            entries.append(_entry(clean, found, version, task=task))
        return entries, jsonable(output, collector)
    found = []
    clean_all = jsonable(output, collector, found)
    if isinstance(clean_all.get("patient"), dict) or isinstance(clean_all.get("lesions"), list):
        patient = dict(clean_all.get("patient") or {})
        merged = {**{k: v for k, v in clean_all.items() if k != "patient"}, **patient}
        entry = _entry(merged, found, version or patient.get("model_version"), image="study", task=task)
        if isinstance(clean_all.get("slices"), list):
            entry["slices"] = clean_all["slices"]
            entry["details"] = {k: v for k, v in merged.items() if k != "slices"}
        entries.append(entry)
    else:
        entries.append(_entry(clean_all, found, version, image="study", task=task))
    return entries, clean_all
