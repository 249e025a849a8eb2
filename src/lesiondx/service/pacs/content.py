"""What a study's results say, in the terms the DICOM objects need: boxes per source image,
finding label, probability, location and the algorithm that produced them.

Read from the service's result entries (:mod:`lesiondx.service.results`): ct-covid's ``slices`` (boxes
per slice), ct-liver's ``details.lesions`` (boxes per slice and series folder; inside-liver ones
only), us-liver's one ``box`` per image. No task writes a pixel mask the service keeps, so masks
are the boxes filled (the SEG says so in its segment label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lesiondx.io.deid import remap_uid

from .source import SourceSeries

AI_MARK = "lesiondx AI result - not verified"
NOT_A_DIAGNOSIS = "AI-generated second opinion, not verified by a clinician; not a diagnosis."


def derived_uid(*parts: str) -> str:
    """A deterministic UID (``2.25.…``) from ``parts``: the same study, result version and object kind give the same
    UID, so a re-sent version is one copy in the PACS (see :func:`~lesiondx.service.pacs.build.result_uid`)."""
    return remap_uid("|".join(parts), "lesiondx result")


@dataclass(frozen=True)
class BoxFinding:
    """A box ``(x1, y1, x2, y2)`` (pixels, x2/y2 exclusive) on image ``slice`` of input ``series``."""

    series: str
    slice: int
    box: tuple[int, int, int, int]
    location: str | None = None


@dataclass(frozen=True)
class Finding:
    """One result entry: label, probability, location text, algorithm and the input it concerns."""

    label: str
    probability: float | None
    location: str | None
    algorithm: str
    version: str
    series: str | None  # input name; None = the whole study (first input)
    lesion: bool = True  # the result says a lesion is present (False: normal, no lesion, not assessable)


def _box(value: Any) -> tuple[int, int, int, int] | None:
    if isinstance(value, dict):
        value = value.get("box")
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        x1, y1, x2, y2 = (int(round(float(v))) for v in value)
        return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None
    return None


def _location(*items: Any) -> str | None:
    """The patient-term location a result carries, else its image quadrant (said as such)."""
    for item in items:
        if isinstance(item, dict):
            for key in ("location", "patient_location", "site"):
                if isinstance(item.get(key), str) and item[key].strip():
                    return item[key].strip()
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("quadrant"), str):
            return f"image quadrant {item['quadrant']}"
    return None


def box_findings(task: str, entries: list[dict[str, Any]], inputs: list[SourceSeries]) -> list[BoxFinding]:
    """Every lesion box of the results, placed on an input image; boxes without a slice on a volume are skipped."""
    if not inputs:
        return []
    out: list[BoxFinding] = []
    if task == "us-liver":
        for entry, source in zip(entries, inputs):
            box = _box((entry.get("details") or {}).get("box")) or next(filter(None, map(_box, entry.get("boxes") or [])), None)
            if box is not None:
                out.append(BoxFinding(source.name, 0, box, _location(entry)))
        return out
    names = {s.name for s in inputs}
    for entry in entries:
        lesions = (entry.get("details") or {}).get("lesions")
        if task == "ct-liver" and isinstance(lesions, list):
            for lesion in lesions:
                box = _box(lesion)
                series = str(lesion.get("study") or inputs[0].name)
                if box is not None and lesion.get("inside_liver", True) and isinstance(lesion.get("slice"), int) and series in names:
                    out.append(BoxFinding(series, lesion["slice"], box, _location(lesion)))
            continue
        for item in entry.get("slices") or []:
            index = item.get("slice", item.get("index")) if isinstance(item, dict) else None
            for b in (item.get("boxes") or []) if isinstance(index, int) else []:
                box = _box(b)
                if box is not None:
                    out.append(BoxFinding(inputs[0].name, index, box, _location(b)))
        if not entry.get("slices"):
            for b in entry.get("boxes") or []:
                box = _box(b)
                index = b.get("slice", b.get("slice_index")) if isinstance(b, dict) else None
                if box is not None and isinstance(index, int):
                    out.append(BoxFinding(inputs[0].name, index, box, _location(b)))
    return out


NEGATIVE_LABELS = ("normal", "no ", "not assessable", "negative")


def says_lesion(task: str, entry: dict[str, Any]) -> bool:
    """Whether a result entry reports a lesion: the CT tasks' 0/1 ``decision`` when given (us-liver's decision is
    benign/malignant, both lesions), else a label that is not a negative one ('normal', 'no liver lesion'...)."""
    decision = (entry.get("details") or {}).get("decision")
    if task != "us-liver" and isinstance(decision, (bool, int)) and int(decision) in (0, 1):
        return bool(decision)
    label = str(entry.get("label") or "").strip().lower()
    return bool(label) and not label.startswith(NEGATIVE_LABELS)


def findings(task: str, entries: list[dict[str, Any]], inputs: list[SourceSeries]) -> list[Finding]:
    """One :class:`Finding` per result entry (us-liver: per image; CT: the whole study)."""
    out = []
    for index, entry in enumerate(entries):
        details = entry.get("details") or {}
        series = inputs[index].name if task == "us-liver" and index < len(inputs) else None
        rule = details.get("rule") if isinstance(details.get("rule"), dict) else {}
        out.append(Finding(label=str(entry.get("label") or "no label"), probability=entry.get("probability"),
                           location=_location(entry, details, rule), algorithm=f"lesiondx {task}",
                           version=str(entry.get("model_version") or "unknown")[:64], series=series,
                           lesion=says_lesion(task, entry)))
    return out


SLICE_IN_NAME = re.compile(r"slice_?(\d+)", re.IGNORECASE)


def overlay_source(name: str, task: str, entry_index: int, inputs: list[SourceSeries]) -> list[Any]:
    """The source images an overlay PNG shows: by the slice number in its name (``slice_0004.png``,
    ``series_01_slice003.png``; ``..._middle`` = middle slice), the image of its entry for us-liver,
    else every image of the first input."""
    with_images = [s for s in inputs if s.images]
    if not with_images:
        return []
    if task == "us-liver":
        source = inputs[entry_index] if entry_index < len(inputs) else with_images[0]
        return list(source.images[:1])
    series = next((s for s in with_images if name.startswith(s.name + "_")), with_images[0])
    match = SLICE_IN_NAME.search(name)
    if match and int(match.group(1)) < len(series.images):
        return [series.images[int(match.group(1))]]
    if "middle" in name.lower():
        return [series.images[len(series.images) // 2]]
    return list(series.images)
