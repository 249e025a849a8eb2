"""TID 1500 Measurement Report (highdicom.sr) of a study's findings: label, AI probability,
location, algorithm name/version, references to the images (image library) and to the SEG segment. Only a
positive result's group names a finding (Lesion, SCT 52988006); a negative one carries its classification only."""

from __future__ import annotations

import re
import warnings

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from .content import AI_MARK, NOT_A_DIAGNOSIS, Finding, derived_uid

SCHEME = "99LESIONDX"
PROBABILITY = hd.sr.CodedConcept("LDX0001", SCHEME, "AI probability of the finding")
LOCATION = hd.sr.CodedConcept("LDX0002", SCHEME, "Location (as reported by lesiondx)")
CLASSIFICATION = hd.sr.CodedConcept("LDX0003", SCHEME, "AI classification")  # value: the result's label
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
PROCEDURES = {"ct-covid": hd.sr.CodedConcept("169069000", "SCT", "CT of chest"),
              "ct-liver": hd.sr.CodedConcept("169070004", "SCT", "CT of abdomen"),
              "us-liver": hd.sr.CodedConcept("45036003", "SCT", "Ultrasonography of abdomen")}


def _label_code(label: str) -> hd.sr.CodedConcept:
    value = re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_")[:16] or "NONE"
    return hd.sr.CodedConcept(value, SCHEME, label[:64])


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _group(index: int, finding: Finding, seg: tuple[Dataset, str] | None, images: list[Dataset],
           tracking_uid: str, version_text: str) -> hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    algorithm = hd.sr.AlgorithmIdentification(name=finding.algorithm, version=finding.version)
    measurements = []
    if isinstance(finding.probability, (int, float)):
        measurements.append(hd.sr.Measurement(name=PROBABILITY, value=float(finding.probability), unit=NO_UNITS,
                                              algorithm_id=algorithm))
    common = dict(tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=f"lesiondx finding {index}"),
                  finding_type=codes.SCT.Lesion if finding.lesion else None, algorithm_id=algorithm, measurements=measurements or None,
                  qualitative_evaluations=[hd.sr.QualitativeEvaluation(CLASSIFICATION, _label_code(finding.label))])
    if seg is not None:
        seg_ds, source_series_uid = seg
        reference = hd.sr.ReferencedSegment(sop_class_uid=seg_ds.SOPClassUID, sop_instance_uid=seg_ds.SOPInstanceUID,
                                            segment_number=1,
                                            source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid))
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=reference, **common)
    else:
        sources = [hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in images]
        group = hd.sr.MeasurementsAndQualitativeEvaluations(source_images=sources or None, **common)
    items = group[0].ContentSequence
    if finding.location:
        items.append(_text(LOCATION, finding.location))
    items.append(_text(codes.DCM.Comment, NOT_A_DIAGNOSIS))
    items.append(_text(codes.DCM.Comment, version_text))
    return group


def measurement_report(task: str, findings: list[Finding], images: list[Dataset], segs: dict[str, tuple[Dataset, str]],
                       images_by_series: dict[str, list[Dataset]], *, series_uid: str, sop_uid: str, device_uid: str,
                       series_number: int, result_version: int, predecessor: tuple[Dataset, int] | None = None
                       ) -> Dataset:
    """A Comprehensive 3D SR holding a TID 1500 Measurement Report, one measurement group per finding.

    ``segs`` maps an input name to ``(SEG dataset, source SeriesInstanceUID)``; a finding about the
    whole study uses the first input's SEG. ``images`` go into the image library and the evidence.
    ``predecessor``: ``(previous SR's Study/Series/SOP Instance UID and SOP class, its version)``, referenced in
    PredecessorDocumentsSequence; each group's comment says which version this is and which it replaces.
    """
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=device_uid, name="lesiondx", manufacturer_name="lesiondx",
                                                       model_name=f"lesiondx {task}")
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.cid270.Device, observer_identifying_attributes=device))
    version_text = f"lesiondx result version {result_version}" + (
        f"; replaces version {predecessor[1]} (Predecessor Documents)" if predecessor else "")
    groups = []
    first = next(iter(segs), None)
    for index, finding in enumerate(findings, start=1):
        key = finding.series or first
        seg = segs.get(key) if key else None
        source = images_by_series.get(finding.series or "", []) if finding.series else images
        groups.append(_group(index, finding, seg, source, derived_uid(sop_uid, "tracking", str(index)),
                             version_text))
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=PROCEDURES.get(task, PROCEDURES["ct-liver"]),
                                     imaging_measurements=groups, referenced_images=images or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR(
            evidence=images + [seg for seg, _ in segs.values()], content=report[0], series_instance_uid=series_uid,
            series_number=series_number, sop_instance_uid=sop_uid, instance_number=1, manufacturer="lesiondx",
            is_complete=True, is_final=False, is_verified=False, transfer_syntax_uid=ExplicitVRLittleEndian,
            previous_versions=[predecessor[0]] if predecessor else None)
    sr.SeriesDescription = f"{AI_MARK} v{result_version} (findings)"[:64]
    return sr

