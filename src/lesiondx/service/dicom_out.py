"""Results as DICOM: a Secondary Capture of each overlay and a Comprehensive SR with the finding,
sent to the configured PACS (C-STORE SCU).

Both objects reference the *de-identified* study the service stored (its pseudonymous patient id
and remapped UIDs): the PACS receives them as a separate, pseudonymous study. The SR states the
label, the AI probability, the model version and that this is a second opinion, not a diagnosis.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from .db import Study
from .ingest import dataset_from_bytes
from .settings import PacsTarget

log = logging.getLogger("lesiondx.service.dicom_out")
SCHEME = "99LESIONDX"
MANUFACTURER = "lesiondx"
NOT_A_DIAGNOSIS = "AI second opinion for a qualified clinician; not a diagnosis."


def _reference(core: Any, study: Study) -> Dataset | None:
    """The stored (de-identified) DICOM file in the middle of the study, as the reference dataset."""
    dicom_files = [f for f in study.files if f.kind == "dicom"]
    if not dicom_files:
        return None
    f = dicom_files[len(dicom_files) // 2]
    return _with_type2(dataset_from_bytes(core.storage.blob_path(f.sha256).read_bytes()))


TYPE2 = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
         "ReferringPhysicianName")


def _with_type2(ref: Dataset) -> Dataset:
    """De-identification empties type-2 attributes; DICOM needs them present (empty is fine)."""
    for keyword in TYPE2:
        if keyword not in ref:
            setattr(ref, keyword, "")
    return ref


def secondary_capture(ref: Dataset, overlay_png: Path, *, instance_number: int, series_uid: str) -> Dataset:
    """An RGB Secondary Capture of an overlay PNG in the study of ``ref``."""
    pixels = np.asarray(Image.open(overlay_png).convert("RGB"), dtype=np.uint8)
    with warnings.catch_warnings():  # pseudonymous PatientName "ANON-..." is not a person-name pattern
        warnings.simplefilter("ignore")
        sc = _sc(ref, pixels, instance_number, series_uid)
    sc.SeriesDescription = "lesiondx AI overlay (second opinion)"
    sc.ImageComments = NOT_A_DIAGNOSIS
    return sc


def _sc(ref: Dataset, pixels: np.ndarray, instance_number: int, series_uid: str) -> Dataset:
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=("L", "P"), series_instance_uid=series_uid, series_number=901,
        sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
        transfer_syntax_uid=ExplicitVRLittleEndian)


def finding_sr(ref: Dataset, results: list[dict[str, Any]], task: str, *, evidence: list[Dataset]) -> Dataset:
    """A Comprehensive SR: one finding per result (label, probability, model version) plus the caveat."""
    children: list[Any] = []
    for result in results:
        label = str(result.get("label") or "no label")
        children.append(hd.sr.CodeContentItem(
            name=codes.DCM.Finding, value=hd.sr.CodedConcept(label.upper()[:16].replace(" ", "_"), SCHEME, label),
            relationship_type="CONTAINS"))
        if isinstance(result.get("probability"), (int, float)):
            children.append(hd.sr.NumContentItem(
                name=hd.sr.CodedConcept("AIPROB", SCHEME, f"AI probability ({label})"),
                value=float(result["probability"]), unit=hd.sr.CodedConcept("1", "UCUM", "no units"),
                relationship_type="CONTAINS"))
        children.append(hd.sr.TextContentItem(
            name=codes.DCM.Comment,
            value=f"{task} model {result.get('model_version') or 'unknown'}; image {result.get('image') or 'study'}"[:1024],
            relationship_type="CONTAINS"))
    children.append(hd.sr.TextContentItem(name=codes.DCM.Comment, value=NOT_A_DIAGNOSIS, relationship_type="CONTAINS"))
    root = hd.sr.ContainerContentItem(name=hd.sr.CodedConcept("LESIONDX", SCHEME, "lesiondx AI second opinion"))
    root.ContentSequence = hd.sr.ContentSequence(children)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence, content=root, series_instance_uid=hd.UID(), series_number=902,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
            transfer_syntax_uid=ExplicitVRLittleEndian)
    sr.SeriesDescription = "lesiondx AI finding (second opinion)"
    return sr


def build_result_objects(core: Any, study_id: str) -> list[Dataset]:
    """The SC images (one per overlay) and the SR for a finished study; [] when it has no DICOM."""
    with core.db.session() as s:
        study = s.get(Study, study_id)
        if study is None or study.status != "done":
            return []
        ref = _reference(core, study)
        if ref is None:
            return []
        results, task = study.results, study.task or "unknown"
    series_uid = hd.UID()
    objects: list[Dataset] = []
    names = [n for r in results for n in r.get("overlays") or []]
    for number, name in enumerate(dict.fromkeys(names), start=1):
        path = core.storage.result_file(study_id, name)
        if path is not None:
            objects.append(secondary_capture(ref, path, instance_number=number, series_uid=series_uid))
    objects.append(finding_sr(ref, results, task, evidence=[ref]))
    return objects


def send(objects: list[Dataset], target: PacsTarget, *, calling_aet: str = "LESIONDX", timeout: float = 30) -> list[int]:
    """C-STORE every object to ``target``; returns the DIMSE status of each (raises if no association)."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for context in (SecondaryCaptureImageStorage, ComprehensiveSRStorage):
        ae.add_requested_context(context, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(target.host, target.port, ae_title=target.aet)
    if not assoc.is_established:
        raise ConnectionError(f"PACS {target} refused or unreachable")
    statuses: list[int] = []
    try:
        for ds in objects:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
    finally:
        assoc.release()
    return statuses


def export_study(core: Any, study_id: str) -> str:
    """Build and send a study's results to the configured PACS; the outcome is stored on the study."""
    target = core.settings.pacs
    if target is None:
        return "no PACS configured"
    try:
        objects = build_result_objects(core, study_id)
        if not objects:
            outcome = "not sent: study has no DICOM source"
        else:
            statuses = send(objects, target, calling_aet=core.settings.dicom_aet)
            ok = sum(1 for st in statuses if st == 0)
            outcome = f"sent {ok}/{len(objects)} object(s) (SC + SR) to {target}"
    except Exception as exc:  # the PACS being down must not fail the study
        log.warning("export of %s to %s failed: %s", study_id, target, exc)
        outcome = f"export to {target} failed: {type(exc).__name__}: {exc}"[:500]
    with core.db.session() as s, s.begin():
        study = s.get(Study, study_id)
        if study is not None:
            study.export_status = outcome
    return outcome
