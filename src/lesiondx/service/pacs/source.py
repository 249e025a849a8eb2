"""The images a study's results refer to, with their ORIGINAL identifiers restored.

The stored files are de-identified; :func:`load_sources` reads them in the order the task saw
them (the worker's own :func:`~lesiondx.service.worker.materialise`, then superior → inferior like
:func:`lesiondx.io.dicom.read_dicom_series`) and puts back, on in-memory copies only, the patient,
study and instance identifiers kept in the identity map, so that every object built from them
lands in the patient's original study and references the original SOP instances.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from highdicom.enum import SpecificCharacterSetValues
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, TM

from lesiondx.io.dicom import series_files

from ..db import Study
from ..identity import INSTANCE_KEYWORDS, STUDY_KEYWORDS, StudyOriginals
from ..worker import materialise

# Attributes de-identification leaves empty that objects derived from the images must carry (type 2).
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
         "AccessionNumber", "ReferringPhysicianName")


KNOWN_CHARSETS = frozenset(v.value for v in SpecificCharacterSetValues)
DEFAULT_REPERTOIRE = ("", "ISO_IR 6", "ISO 2022 IR 6")


def character_set(value: Any) -> list[str] | None:
    """SpecificCharacterSet as highdicom takes it: an empty first value of a multi-valued one (the usual Japanese /
    Korean ``\\ISO 2022 IR 87``) is the default repertoire ``ISO 2022 IR 6``; the default alone (also the common
    misspelling ``ISO_IR 6``) is no value (None); a value highdicom does not know gives ``ISO_IR 192`` (UTF-8:
    every decoded text can be written in it)."""
    values = [str(v).strip().upper() for v in ([value] if isinstance(value, str) else (value or []))]
    if all(v in DEFAULT_REPERTOIRE for v in values):
        return None
    if len(values) > 1:
        values = ["ISO 2022 IR 6" if v in DEFAULT_REPERTOIRE else v for v in values]
    return values if all(v in KNOWN_CHARSETS for v in values) else ["ISO_IR 192"]


SEXES = {"M": "M", "F": "F", "O": "O", "MALE": "M", "FEMALE": "F", "OTHER": "O"}


def conformant(keyword: str, value: str) -> str:
    """``value`` as highdicom takes it for the patient/study attributes it checks: PatientSex one of M/F/O (case and
    spelled-out forms mended), dates and times without the separators of the retired ACR-NEMA form ('2020.01.31',
    '12:30:00'); '' when it cannot
    be mended (all are type 2 in SEG / SR / SC). Other attributes are returned unchanged."""
    text = str(value).strip()
    if keyword == "PatientSex":
        return SEXES.get(text.upper(), "")
    if keyword not in ("PatientBirthDate", "StudyDate", "StudyTime") or not text:
        return text
    parse = TM if keyword == "StudyTime" else DA
    for candidate in (text.replace(".", "").replace(":", "").replace("-", ""), text):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parse(candidate)
            return candidate
        except (ValueError, TypeError, OverflowError):
            continue
    return ""


@dataclass(frozen=True)
class SourceSeries:
    """One input the task saw (in the worker's input order): its folder or file name (``series_01``,
    ``00003_x.dcm``) and its DICOM images in task order (empty for PNG/JPG inputs)."""

    name: str
    images: tuple[Dataset, ...]


def restore(ds: Dataset, originals: StudyOriginals) -> Dataset:
    """``ds`` (a stored, de-identified header) with the original study and instance identifiers, in place."""
    instance = originals.instances.get(str(ds.get("SOPInstanceUID", "")), {})
    values = {**originals.study, **{k: v for k, v in instance.items() if k in INSTANCE_KEYWORDS}}
    with warnings.catch_warnings():  # originals may break VR rules (e.g. UUID-style UIDs); they are sent as received
        warnings.simplefilter("ignore")
        for keyword in STUDY_KEYWORDS + INSTANCE_KEYWORDS:
            if keyword in values:
                setattr(ds, keyword, conformant(keyword, values[keyword]))
            elif keyword in TYPE2:
                setattr(ds, keyword, "")
        if "PatientSex" in ds:  # not a kept identifier, but de-identification may keep it (patient characteristics)
            ds.PatientSex = conformant("PatientSex", str(ds.PatientSex or ""))
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    if "SpecificCharacterSet" in ds:
        for _ in ds.iterall():  # decode every text with the received character set before it changes
            pass
        charset = character_set(ds.SpecificCharacterSet)
        if charset is None:
            del ds.SpecificCharacterSet
        else:
            ds.SpecificCharacterSet = charset if len(charset) > 1 else charset[0]
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _headers(paths: list[Path]) -> list[Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def input_images(path: Path, task: str) -> list[Dataset]:
    """Headers of the images ``task`` read from one materialised input, in its order: a folder's series exactly as
    :func:`lesiondx.io.dicom.series_files` chooses it (localizers, reformats, copies and other reconstructions
    left out, as the reader left them out), a ``.dcm`` file itself, nothing for other files."""
    if path.is_dir():
        return list(series_files(path, prefer_step_mm=preferred_step_mm(task)).headers)
    return _headers([path]) if path.suffix.lower() == ".dcm" else []


def preferred_step_mm(task: str) -> tuple[float, float] | None:
    """The slice steps (mm) ``task`` prefers when a folder holds several reconstructions (as its reader does)."""
    if task == "ct-covid":
        from lesiondx.gate.ct_covid import VALIDATED_STEPS_MM

        return VALIDATED_STEPS_MM
    return None


def load_sources(core: Any, study_id: str, originals: StudyOriginals) -> list[SourceSeries]:
    """The study's inputs in the worker's order, DICOM images in task order with identifiers restored."""
    with core.db.session() as s, tempfile.TemporaryDirectory(prefix="lesiondx-export-") as tmp:
        study = s.get(Study, study_id)
        if study is None:
            return []
        inputs, _ = materialise(study, core.storage, Path(tmp), study.task)
        out: list[SourceSeries] = []
        for path in inputs:
            images = [restore(ds, originals) for ds in input_images(path, study.task)
                      if str(ds.get("SOPInstanceUID", "")) in originals.instances]
            out.append(SourceSeries(path.name, tuple(images)))
        return out
