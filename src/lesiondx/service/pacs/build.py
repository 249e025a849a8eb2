"""All result objects of one finished study, in the patient's original study: one SEG per input
series with lesion boxes, one TID 1500 SR, one SC per overlay.

UIDs are derived from the keyed hash of the original StudyInstanceUID, the task, the result version and the
object's kind and index (:func:`result_uid`): each result version (a reopened study's re-run) has its own
Series/SOP Instance UIDs, and sending the same version again sends the same UIDs (a PACS keeps one copy).
Most PACS (Orthanc by default) keep the first copy of a re-sent UID and answer Success, so a new version under
old UIDs would never have replaced the old one. Version 1 keeps the UIDs lesiondx gave results before versions
were part of them. The SR of a later version names the previous SR the PACS got in PredecessorDocumentsSequence;
SeriesDescription and SeriesNumber (:func:`series_number`) say which version each object is. The SR's Device
Observer UID is one per installation (keyed with the storage salt) and task, the same in every study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from ..db import Study
from ..identity import StudyOriginals
from .content import box_findings, derived_uid, findings, overlay_source
from .sc import secondary_capture
from .seg import box_mask, segmentation
from .source import load_sources
from .sr import measurement_report

SERIES_NUMBERS = {"seg": 9901, "sr": 9902, "sc": 9903}  # version 1's (those of results sent before versions)
SEG_SERIES_STEP = 10  # one SEG per input series: 9901, 9911, 9921...
VERSION_STEP = 1000  # each later result version: 10901 / 10902 / 10903 for v2, 11901... for v3
MAX_SEG_SERIES = VERSION_STEP // SEG_SERIES_STEP - 10  # SEG numbers of one version stay below the next version's


def series_number(kind: str, version: int, index: int = 0) -> int:
    """The SeriesNumber of a result object: ``kind`` ("seg", "sr", "sc") of result ``version`` (1, 2...), for a SEG
    the ``index`` of its input series (0-based, below :data:`MAX_SEG_SERIES`). Deterministic and distinct across
    versions, so a PACS viewer lists v1 and v2 as different series numbers (version 1 keeps 9901 / 9902 / 9903)."""
    return SERIES_NUMBERS[kind] + SEG_SERIES_STEP * index + VERSION_STEP * (max(version, 1) - 1)


@dataclass(frozen=True)
class SentSR:
    """The SR of an earlier result version as the PACS got it: version, task and the SOP class it was sent as."""

    version: int
    task: str
    sop_class_uid: str


def result_uid(study_key: str, task: str, version: int, *parts: str) -> str:
    """The UID of a result object of ``version`` (1, 2, ...); version 1 has no version part (the UIDs of results
    sent before versions were part of them)."""
    return derived_uid(study_key, task, *(() if version <= 1 else (f"v{version}",)), *parts)


def _predecessor(study_key: str, study_uid: str, sent: SentSR) -> Dataset:
    """What highdicom needs of a previous SR version to reference it (PredecessorDocumentsSequence)."""
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = result_uid(study_key, sent.task, sent.version, "sr")
    ds.SOPInstanceUID = result_uid(study_key, sent.task, sent.version, "sr", "1")
    ds.SOPClassUID = sent.sop_class_uid
    return ds


@dataclass(frozen=True)
class ResultObjects:
    """What goes to the PACS for one study (of ``task``), and what could not be built (reasons, no PHI)."""

    objects: tuple[Dataset, ...]
    skipped: tuple[str, ...] = ()
    task: str = "unknown"

    def count(self, modality: str) -> int:
        return sum(1 for ds in self.objects if ds.get("Modality") == modality)


def build_result_objects(core: Any, study_id: str, originals: StudyOriginals, study_key: str,
                         result_version: int, predecessor: SentSR | None = None) -> ResultObjects:
    """SEG(s) + SR + SC(s) of ``result_version`` for a ``done`` study; empty when it has no DICOM source of its own.
    ``predecessor``: the earlier version's SR the PACS holds, which this version's SR replaces."""
    with core.db.session() as s:
        study = s.get(Study, study_id)
        if study is None or study.status != "done":
            return ResultObjects(())
        entries, task = study.results, study.task or "unknown"
    inputs = load_sources(core, study_id, originals)
    if not any(series.images for series in inputs):
        return ResultObjects(())

    def uid(*parts: str) -> str:
        return result_uid(study_key, task, result_version, *parts)

    skipped: list[str] = []
    boxes = box_findings(task, entries, inputs)
    all_findings = findings(task, entries, inputs)
    segs: dict[str, tuple[Dataset, str]] = {}
    objects: list[Dataset] = []
    version = all_findings[0].version if all_findings else "unknown"
    for index, series in enumerate(inputs):
        if not series.images:
            continue
        mask = box_mask(series, boxes)
        if not mask.any():
            continue
        try:
            seg = segmentation(series, mask, task=task, version=version, series_uid=uid("seg", str(index)),
                               sop_uid=uid("seg", str(index), "1"),
                               series_number=series_number("seg", result_version, index),
                               result_version=result_version)
        except Exception as exc:  # e.g. source images highdicom cannot place (no geometry): the rest still goes
            skipped.append(f"SEG of input {index + 1}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        segs[series.name] = (seg, str(series.images[0].SeriesInstanceUID))
        objects.append(seg)
    images = [ds for series in inputs for ds in series.images]
    previous = None
    if predecessor is not None and predecessor.version < result_version:
        previous = (_predecessor(study_key, str(images[0].StudyInstanceUID), predecessor), predecessor.version)
    by_series = {series.name: list(series.images) for series in inputs}
    objects.append(measurement_report(task, all_findings, images, segs, by_series, series_uid=uid("sr"),
                                      sop_uid=uid("sr", "1"),
                                      device_uid=derived_uid(core.sealer.study_key("lesiondx device"), task, "device"),
                                      series_number=series_number("sr", result_version), result_version=result_version,
                                      predecessor=previous))
    number = 0
    for entry_index, entry in enumerate(entries):
        for name in entry.get("overlays") or []:
            path = core.storage.result_file(study_id, name)
            sources = overlay_source(name, task, entry_index, inputs)
            if path is None or not sources:
                continue
            number += 1
            objects.append(secondary_capture(sources[len(sources) // 2], sources, path, series_uid=uid("sc"),
                                             sop_uid=uid("sc", str(number)), instance_number=number,
                                             series_number=series_number("sc", result_version),
                                             result_version=result_version))
    return ResultObjects(tuple(objects), tuple(skipped), task)
