"""A chest-CT study sent with two reconstructions (two CT series of one study, as a scanner or PACS sends them) is
read by ct-covid like a scanner export folder: one series picked and named, not "give one series folder" (real
ct-covid model; ALTERED copies of the bundled CT-MD excerpt: the second series is the same slices under new UIDs
and another description)."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import generate_uid

from lesiondx.service.core import ServiceCore
from lesiondx.service.identity import originals_for_study
from lesiondx.service.ingest import Triage, triage_file
from lesiondx.service.pacs.build import build_result_objects
from lesiondx.service.settings import Settings
from lesiondx.service.worker import default_predictor
from service_helpers import CT_SERIES


SOURCES: dict[str, str] = {}  # SOPInstanceUID -> SeriesInstanceUID of what the test sent


def _two_reconstructions() -> list[bytes]:
    study_uid, blobs = generate_uid(), []
    for description in ("LUNG 1.0 B70f", "MEDIASTINUM 1.0 B30f"):
        series_uid = generate_uid()
        for path in CT_SERIES:
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
            ds.SeriesDescription = description
            SOURCES[str(ds.SOPInstanceUID)] = series_uid
            buffer = io.BytesIO()
            ds.save_as(buffer)
            blobs.append(buffer.getvalue())
    return blobs


def test_a_study_with_two_ct_series_is_read_as_one_export_and_its_results_map_to_the_series_read(tmp_path):
    core = ServiceCore(Settings(storage=tmp_path / "store"), predictor=default_predictor)  # in-process, real model
    triage = Triage()
    for i, data in enumerate(_two_reconstructions()):
        triage.extend(triage_file(f"im{i}.dcm", data, core.salt, max_file_bytes=10**8))
    assert not triage.errors
    study = core.submit(triage, requested_task="ct-covid", uploader="test")
    core.worker.run_job(core.db.claim_next())
    with core.db.session() as s:
        from lesiondx.service.db import Study

        done = s.get(Study, study.id)
        assert done.status == "done", done.status
        result = done.results[0] if done.results else {}
    details = result["details"]
    read, skipped = (next(n for n in details["input_warnings"] if n.startswith(k)) for k in ("read series", "skipped series"))
    assert "of 2 series" in read and "10 images" in skipped and details["n_slices"] == 10
    assert details["input"] == "20 CT files of 2 series (the one read is named in the notes)"
    originals = originals_for_study(core.db, study.id, core.sealer)
    built = build_result_objects(core, study.id, originals,
                                 core.sealer.study_key(originals.study["StudyInstanceUID"]), 1)
    sources = {str(ref.ReferencedSOPInstanceUID) for ds in built.objects if ds.Modality == "SEG"
               for series in ds.ReferencedSeriesSequence for ref in series.ReferencedInstanceSequence}
    assert sources and len({SOURCES[uid] for uid in sources}) == 1  # the boxes sit on one series' images, not both
    core.db.dispose()
