"""Result versions in the PACS: each version's own deterministic UIDs, the SR's PredecessorDocumentsSequence, and
re-sends of a version (fixtures and the fake PACS: test_service_dicom_out.py; a real Orthanc: test_service_orthanc.py).
"""

from __future__ import annotations

from typing import Any

import pydicom
import pytest

from lesiondx.service.core import ServiceCore
from lesiondx.service.db import Study
from lesiondx.service.identity import originals_for_study
from lesiondx.service.pacs import export_detail, export_once, queue_export
from test_service_dicom_out import _done, _objects, _walk, fake_ct_covid, fake_pacs


@pytest.fixture
def done_study(tmp_path):
    """test_service_dicom_out's finished ct-covid study (its fake predictor), one per test."""
    yield from _done(tmp_path, fake_ct_covid)


def _uids(objects: dict[str, list[pydicom.Dataset]]) -> set[str]:
    return {str(uid) for found in objects.values() for ds in found for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID)}


def test_each_result_version_has_its_own_uids_and_says_its_version(done_study):
    """Was: every version reused v1's Series/SOP Instance UIDs; a PACS keeping the first copy of a re-sent UID (Orthanc's
    default, most PACS) answered Success and kept v1 while lesiondx showed 'sent v2'. Now each version has its own
    (still deterministic) UIDs, and v1 keeps the UIDs lesiondx always gave it."""
    core, study_id, _, _ = done_study
    first, second, again = _objects(core, study_id, 1), _objects(core, study_id, 2), _objects(core, study_id, 2)
    assert not _uids(first) & _uids(second) and _uids(second) == _uids(again)
    for modality in ("SEG", "SR", "OT"):
        assert " v2 " in second[modality][0].SeriesDescription and " v1 " in first[modality][0].SeriesDescription
    from lesiondx.service.pacs.build import SERIES_NUMBERS
    from lesiondx.service.pacs.content import derived_uid

    originals = originals_for_study(core.db, study_id, core.sealer)
    key = core.sealer.study_key(originals.study["StudyInstanceUID"])
    assert first["SR"][0].SOPInstanceUID == derived_uid(key, "ct-covid", "sr", "1")  # as before versions had UIDs
    assert first["SR"][0].SeriesNumber == SERIES_NUMBERS["sr"]


def test_each_result_version_has_its_own_series_numbers(done_study):
    """Was: v1 and v2 both went out as series 9901 / 9902 / 9903, so a PACS viewer listed two series with one number
    (told apart only by the description). Now each version has its own numbers (v1 keeps 9901-9903, v2 10901-10903...),
    the same ones when a version is sent again, and the description says the version."""
    core, study_id, _, _ = done_study
    by_version = {v: _objects(core, study_id, v) for v in (1, 2, 3)}
    numbers = {v: {int(ds.SeriesNumber) for found in objects.values() for ds in found}
               for v, objects in by_version.items()}
    assert numbers[1] == {9901, 9902, 9903} and numbers[2] == {10901, 10902, 10903}
    assert not numbers[1] & numbers[2] and not numbers[2] & numbers[3] and not numbers[1] & numbers[3]
    again = _objects(core, study_id, 2)
    assert {int(ds.SeriesNumber) for found in again.values() for ds in found} == numbers[2]
    for version, objects in by_version.items():
        assert all(f" v{version} " in ds.SeriesDescription for found in objects.values() for ds in found)


def test_series_numbers_of_versions_and_input_series_never_collide():
    """One SEG per input series (9901 + 10 per series) and one step per version: no two objects of any two versions
    share a number, for as many input series as :data:`MAX_SEG_SERIES`."""
    from lesiondx.service.pacs.build import MAX_SEG_SERIES, series_number

    seen: set[int] = set()
    for version in range(1, 6):
        numbers = [series_number("sr", version), series_number("sc", version)] + [
            series_number("seg", version, index) for index in range(MAX_SEG_SERIES)]
        assert len(set(numbers)) == len(numbers) and not seen & set(numbers)
        seen |= set(numbers)


def _predecessors(sr: pydicom.Dataset) -> list[tuple[str, str, str, str]]:
    return [(str(study.StudyInstanceUID), str(series.SeriesInstanceUID), str(ref.ReferencedSOPClassUID),
             str(ref.ReferencedSOPInstanceUID)) for study in sr.get("PredecessorDocumentsSequence", [])
            for series in study.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence]


def _export(core: ServiceCore, study_id: str, version: int) -> dict[str, Any]:
    from lesiondx.service.pacs.export import _claim

    with core.db.session() as s, s.begin():
        s.get(Study, study_id).result_version = version  # as a reopened study's re-run sets it
    assert queue_export(core, study_id) and _claim(core) == study_id and export_once(core, study_id) == "sent"
    with core.db.session() as s:
        return export_detail(s.get(Study, study_id))


@pytest.mark.parametrize("sr_class", ["Comprehensive3DSRStorage", "ComprehensiveSRStorage"])
def test_a_new_version_s_sr_names_the_last_sr_the_pacs_got_as_its_predecessor(done_study, sr_class):
    """v2's SR carries PredecessorDocumentsSequence -> v1's SR as the PACS got it (Study/Series/SOP Instance UID, and
    the SOP class it was sent as); sending v2 again sends the same objects; v4 after an unsent v3 names v2."""
    from pynetdicom import sop_class

    core, study_id, study_uid, _ = done_study
    with fake_pacs(core, (getattr(sop_class, sr_class), sop_class.SecondaryCaptureImageStorage)) as received:
        assert _export(core, study_id, 1)["version"] == 1
        (v1,) = [ds for ds in received if ds.Modality == "SR"]
        assert _predecessors(v1) == [] and v1.SOPClassUID == getattr(sop_class, sr_class)
        received.clear()
        detail = _export(core, study_id, 2)
        assert detail["version"] == 2 and detail["state"] == "sent"
        (v2,) = [ds for ds in received if ds.Modality == "SR"]
        assert _predecessors(v2) == [(study_uid, v1.SeriesInstanceUID, v1.SOPClassUID, v1.SOPInstanceUID)]
        texts = [str(item.TextValue) for item in _walk(v2) if "TextValue" in item]
        assert "lesiondx result version 2; replaces version 1 (Predecessor Documents)" in texts
        first_send = {(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in received}
        received.clear()
        assert _export(core, study_id, 2)["version"] == 2  # the same version sent again: the same objects
        assert {(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in received} == first_send
        (v2_again,) = [ds for ds in received if ds.Modality == "SR"]
        assert _predecessors(v2_again) == _predecessors(v2)
        received.clear()
    assert queue_export(core, study_id)
    from lesiondx.service.pacs.export import _claim

    with core.db.session() as s, s.begin():
        s.get(Study, study_id).result_version = 3
    assert _claim(core) == study_id and export_once(core, study_id) == "failed"  # v3 never reaches the PACS
    with fake_pacs(core) as received:
        assert _export(core, study_id, 4)["version"] == 4
        (v4,) = [ds for ds in received if ds.Modality == "SR"]
    assert _predecessors(v4) == [(study_uid, v2.SeriesInstanceUID, v2.SOPClassUID, v2.SOPInstanceUID)]


@pytest.mark.parametrize("legacy_status", ['{"state": "sent", "attempts": 1, "version": 1}', "sent 2026-12-04 10:00"])
def test_a_version_an_earlier_lesiondx_sent_stays_listed_after_the_next_version(legacy_status: str):
    """Was (found upgrading a 2026-12-04/05 storage in place): a study an earlier release had sent kept no
    ``sent_versions``, so after v2 went out the study page said 'the PACS holds v2' while v1 was in the PACS too."""
    from pydicom.uid import Comprehensive3DSRStorage, EnhancedSRStorage

    from lesiondx.service.pacs.export import _record_sent, predecessor_sr, sent_versions

    study = Study(id="s1", task="ct-covid", export_status=legacy_status, export_version=1 if "{" in legacy_status else 0)
    assert [v["version"] for v in sent_versions(study)] == [1]
    predecessor = predecessor_sr(study, 2)
    assert predecessor is not None and predecessor.version == 1 and predecessor.sop_class_uid == Comprehensive3DSRStorage
    _record_sent(study, 2, "ct-covid", EnhancedSRStorage)
    assert [v["version"] for v in sent_versions(study)] == [1, 2]
    assert predecessor_sr(study, 3).version == 2
