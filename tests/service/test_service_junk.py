"""Junk uploads: 4xx with a reason when the whole request is junk, per-file errors when mixed,
and the service stays up."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib

import pytest

from lesiondx.service.bounds import IngestPolicy
from lesiondx.service.ingest import triage_file

from service_helpers import CT_SERIES, US_IMAGES, file_field, wait_study

MB = 1024 * 1024


def _reasons(response):
    return {e["file"]: e["reason"] for e in response.json()["detail"]["errors"]}


def _single_pseudonym(name: str) -> str:
    """The pseudonym of the only file of a request: file-001 plus its (common) suffix."""
    return "file-001" + name[name.rfind("."):]


@pytest.mark.parametrize("name, content, reason", [
    ("empty.dcm", b"", "file is empty"),
    ("notes.dcm", b"this is a text file, not DICOM\n" * 20, "not a DICOM"),
    ("truncated.dcm", CT_SERIES[0].read_bytes()[:3000], "truncated DICOM file"),
    ("header-only.dcm", CT_SERIES[0].read_bytes()[:200], "DICOM"),
    ("fake.png", b"GIF89a not really a png at all", "not a PNG image"),
    ("half.jpg", US_IMAGES[0].read_bytes()[:5000], "corrupt or truncated image"),
    ("report.pdf", b"%PDF-1.4 something", "unsupported file type"),
    ("broken.zip", b"PK\x03\x04" + b"\x00" * 50, "zip"),
])
def test_all_junk_request_is_422_with_the_reason(client, name, content, reason):
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0], name, content)])
    assert response.status_code == 422, response.text
    shown = _single_pseudonym(name)  # errors name files by pseudonym, never the client's name
    assert reason in _reasons(response)[shown] and name not in response.text
    assert "/tmp/" not in _reasons(response)[shown]  # no server paths in messages
    assert client.get("/api/health").json()["status"] == "ok"


def test_unsupported_modality_is_refused(client):
    import pydicom

    ds = pydicom.dcmread(CT_SERIES[0])
    ds.Modality = "MR"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0], "mr.dcm", buffer.getvalue())])
    assert response.status_code == 422 and "unsupported modality 'MR'" in _reasons(response)["file-001.dcm"]


def test_mixed_batch_keeps_good_files_and_reports_bad_ones(client):
    files = [file_field(p, f"IM{i:04d}.dcm") for i, p in enumerate(CT_SERIES[:4])] + [
        file_field(CT_SERIES[0], "x-empty.dcm", b""),
        file_field(CT_SERIES[0], "x-cut.dcm", CT_SERIES[1].read_bytes()[:4000]),
        file_field(CT_SERIES[0], "x-readme.dcm", b"hello"),
    ]  # pseudonyms follow natural order of the names: IM0000-IM0003 → file-001..004, x-* → file-005..007
    response = client.post("/api/studies", files=files)
    assert response.status_code == 201, response.text
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "done" and study["n_files"] == 4
    reasons = {e["file"]: e["reason"] for e in study["errors"]}
    assert set(reasons) == {"file-005.dcm", "file-006.dcm", "file-007.dcm"}
    assert reasons["file-006.dcm"] == "file is empty"  # x-cut, x-empty, x-readme in name order


def test_zip_of_dicom_is_one_study_and_bad_members_are_listed(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in CT_SERIES[:5]:
            archive.write(path, f"P002/{path.name}")
        archive.writestr("P002/notes.txt", "no image here")
        archive.writestr("__MACOSX/._IM0021.dcm", "resource fork junk")
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0], "series.zip", buffer.getvalue())])
    assert response.status_code == 201, response.text
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "done" and study["task"] == "ct-covid" and study["n_files"] == 5
    assert [e["file"] for e in study["errors"]] == ["file-001-006.txt"]  # 6th of the zip's members by name


def test_file_over_the_per_file_limit_is_413_alone_and_an_error_when_mixed(make_client):
    client = make_client(max_file_bytes=200_000)
    big = US_IMAGES[0].read_bytes() + b"\x00" * 250_000
    alone = client.post("/api/studies", files=[file_field(US_IMAGES[0], "big.jpg", big)])
    assert alone.status_code == 413 and "too large" in _reasons(alone)["file-001.jpg"]
    mixed = client.post("/api/studies", files=[file_field(US_IMAGES[1]), file_field(US_IMAGES[0], "big.jpg", big)])
    assert mixed.status_code == 201
    study = wait_study(client, mixed.json()["id"])
    assert study["status"] == "done" and len(study["results"]) == 1
    assert "too large" in study["errors"][0]["reason"]


def test_request_over_the_request_limit_is_413_with_the_limit(make_client):
    client = make_client(max_request_bytes=1 * MB)
    response = client.post("/api/studies", files=[file_field(US_IMAGES[0], "huge.jpg", b"\xff\xd8\xff" + b"0" * (2 * MB))])
    assert response.status_code == 413
    assert "limit is 1 MB per request" in response.json()["detail"]
    # streamed body without Content-Length is cut off too
    def body():
        yield b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        for _ in range(3):
            yield b"x" * MB
    streamed = client.post("/api/studies", content=body(), headers={"content-type": "multipart/form-data; boundary=zz"})
    assert streamed.status_code == 413
    ok = client.post("/api/studies", files=[file_field(US_IMAGES[0])])
    assert ok.status_code == 201 and client.get("/api/health").json()["status"] == "ok"


def test_request_without_files_is_rejected(client):
    assert client.post("/api/studies").status_code == 422
    assert client.post("/api/studies", data={"task": "us-liver"}).status_code == 422


def test_fuzzed_files_never_cause_a_server_error(client):
    import random

    rng = random.Random(1234)
    good = CT_SERIES[0].read_bytes()
    jpeg = US_IMAGES[0].read_bytes()
    samples = []
    for i in range(12):
        cut = rng.randrange(132, len(good))
        noisy = bytearray(good)
        for _ in range(50):
            noisy[rng.randrange(132, len(noisy))] = rng.randrange(256)
        samples += [(f"cut{i}.dcm", good[:cut]), (f"noise{i}.dcm", bytes(noisy)),
                    (f"rand{i}.dcm", b"\0" * 128 + b"DICM" + rng.randbytes(rng.randrange(1, 3000))),
                    (f"jpg{i}.jpg", jpeg[: rng.randrange(3, len(jpeg) // 2)])]
    for name, content in samples:
        response = client.post("/api/studies", files=[file_field(CT_SERIES[0], name, content)])
        assert response.status_code in (201, 422), (name, response.status_code, response.text)
    assert client.get("/api/health").json()["worker_alive"] is True


# -- upload-side resource bounds (issue 15 item 3) ----------------------------------------------------------

def _zip_of_zeros(members: int, mb_each: int) -> bytes:
    """A zip bomb: ``members`` members of ``mb_each`` MB of zeros each, deflated ~1000:1. Built from one
    compressed 1 MB block (a full flush makes blocks independent), so making it costs no inflating."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(b"\0" * MB) + comp.flush(zlib.Z_FULL_FLUSH)
    data = block * mb_each + comp.flush()
    crc = 0
    for _ in range(mb_each):
        crc = zlib.crc32(b"\0" * MB, crc)
    size, out, central = mb_each * MB, io.BytesIO(), []
    for i in range(members):
        name, offset = f"zero{i:02d}.dcm".encode(), out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0))
        out.write(name + data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), size,
                                   len(name), 0, 0, 0, 0, 0, offset) + name)
    directory, start = b"".join(central), out.tell()
    out.write(directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members, len(directory), start, 0))
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny IDAT (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_zip_of_zero_filled_members_is_refused_while_streaming_in_well_under_a_second(client):
    bomb = _zip_of_zeros(18, 96)  # 1.8 MB on the wire, 1.7 GB inflated; each member under the per-file limit
    assert 1.5 * MB < len(bomb) < 2.2 * MB and len(zipfile.ZipFile(io.BytesIO(bomb)).infolist()) == 18
    started = time.perf_counter()
    triage = triage_file("file-001.zip", bomb, "s" * 40, policy=IngestPolicy())
    seconds = time.perf_counter() - started
    assert not triage.accepted and seconds < 0.8, seconds
    assert [e.reason for e in triage.errors] == [
        "zip archive refused: a member is compressed more than 100:1 (zip bomb? LESIONDX_ZIP_MAX_RATIO); rest skipped"]
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0], "bomb.zip", bomb)])
    assert response.status_code == 422 and "LESIONDX_ZIP_MAX_RATIO" in _reasons(response)["file-001.zip"]


def test_zip_member_count_and_total_size_limits(make_client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, path in enumerate(CT_SERIES[:5]):
            archive.write(path, f"IM{i}.dcm")
    data = buffer.getvalue()
    policy = IngestPolicy(zip_max_members=4)
    assert "holds 5 files > limit 4 (LESIONDX_ZIP_MAX_MEMBERS)" in triage_file("f.zip", data, "s" * 40,
                                                                                policy=policy).errors[0].reason
    member = len(CT_SERIES[0].read_bytes())
    limited = triage_file("f.zip", data, "s" * 40, policy=IngestPolicy(zip_max_total_bytes=int(2.5 * member)))
    assert len(limited.accepted) == 2  # the third member passes the total while it is read: it and the rest stop
    assert "LESIONDX_ZIP_MAX_TOTAL_MB" in limited.errors[0].reason
    client = make_client(zip_max_members=4)
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0], "series.zip", data)])
    assert response.status_code == 422 and "LESIONDX_ZIP_MAX_MEMBERS" in _reasons(response)["file-001.zip"]


def test_pixel_count_is_checked_from_the_header_before_decoding(make_client):
    started = time.perf_counter()
    huge = triage_file("file-001.png", _png_header_only(9000, 9000), "s" * 40, policy=IngestPolicy())
    assert time.perf_counter() - started < 0.5
    assert huge.errors[0].reason == ("image too large to decode: 9000x9000 = 81.0 Mpx > limit 50.0 Mpx "
                                     "(LESIONDX_MAX_PIXELS)")
    bomb = triage_file("file-001.png", _png_header_only(60000, 60000), "s" * 40, policy=IngestPolicy())
    assert "too large to decode" in bomb.errors[0].reason
    client = make_client(max_pixels=200_000)  # below one 512 x 512 CT slice
    response = client.post("/api/studies", files=[file_field(CT_SERIES[0]), file_field(US_IMAGES[0])])
    reasons = _reasons(response)
    assert response.status_code == 413 and all("LESIONDX_MAX_PIXELS" in r for r in reasons.values())
    assert "512x512 = 0.3 Mpx > limit 0.2 Mpx" in " ".join(reasons.values())


def test_an_instance_without_modality_or_pixels_is_called_incomplete_not_an_unsupported_modality():
    """What a C-STORE of a truncated file delivers: a dataset with neither Modality nor pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset

    from lesiondx.io import ImageReadError
    from lesiondx.service.ingest import accept_dataset

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.PatientID = "X"
    with pytest.raises(ImageReadError, match="incomplete or truncated DICOM instance"):
        accept_dataset("MODALITY message 1", ds, "salt")


def _as_ultrasound(path) -> bytes:
    """A bundled CT slice relabelled Modality US (SYNTHETIC: a test of routing only)."""
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Modality = "US"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("task, content, reason", [
    ("us-liver", None, "a CT image, but task us-liver reads ultrasound"),
    ("ct-covid", _as_ultrasound(CT_SERIES[0]), "an ultrasound (US) image, but task ct-covid reads CT"),
    ("ct-liver", _as_ultrasound(CT_SERIES[0]), "an ultrasound (US) image, but task ct-liver reads CT"),
])
def test_dicom_of_the_wrong_modality_for_the_requested_task_is_422_naming_the_file(client, task, content, reason):
    """Was: 201, queued, then 'failed: prediction failed: ValueError: too many values to unpack (expected 2)'."""
    response = client.post("/api/studies", data={"task": task}, files=[file_field(CT_SERIES[0], "a.dcm", content)])
    assert response.status_code == 422, response.text
    assert reason in _reasons(response)["file-001.dcm"]
    assert client.get("/api/studies").json() == []  # nothing queued


def test_requested_task_keeps_the_files_of_its_modality_and_lists_the_others(client):
    files = [file_field(US_IMAGES[0], "a.jpg"), file_field(CT_SERIES[0], "b.dcm")]
    response = client.post("/api/studies", data={"task": "us-liver"}, files=files)
    assert response.status_code == 201, response.text
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "done" and study["task"] == "us-liver" and study["n_files"] == 1
    assert [e["file"] for e in study["errors"]] == ["file-002.dcm"]
    assert "reads ultrasound" in study["errors"][0]["reason"]


def _disk_full(*_args, **_kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_storage_folder_is_507_in_one_line_and_the_service_stays_up(client, monkeypatch, caplog):
    """Was: 500 'Internal Server Error' and a traceback in the log (seen on a real full tmpfs)."""
    monkeypatch.setattr(client.app.state.core.storage, "put", _disk_full)
    response = client.post("/api/studies", files=[file_field(US_IMAGES[0])])
    assert response.status_code == 507, response.text
    assert response.json()["detail"].startswith("the service's storage is full (no space left in the storage folder)")
    assert "Traceback" not in caplog.text and "/tmp/" not in response.text
    assert client.get("/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("error, expected", [
    (OSError(13, "Permission denied"), "cannot write to the storage folder"),
    (OSError(30, "Read-only file system"), "cannot write to the storage folder"),
    (Exception("(sqlite3.OperationalError) database or disk is full"), "full (no space left in the database)"),
    (Exception("(psycopg.errors.DiskFull) could not extend file"), "full (no space left in the database)"),
    (Exception("(sqlite3.OperationalError) attempt to write a readonly database"), "cannot write to the database"),
    (OSError(2, "No such file or directory"), None),
    (ValueError("something else"), None),
])
def test_storage_problems_are_told_apart_from_other_errors(error, expected):
    from lesiondx.service.storage import storage_problem

    found = storage_problem(error)
    assert (found is None) if expected is None else (expected in found)


def test_a_job_meeting_a_full_storage_folder_fails_with_that_reason_not_an_internal_error(client, monkeypatch, caplog):
    """Was: 'internal error while processing (see service log)' and a traceback in the log."""
    monkeypatch.setattr(client.app.state.core.storage, "work_dir", _disk_full)  # the upload itself fits
    response = client.post("/api/studies", files=[file_field(US_IMAGES[0])])
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "failed"
    assert study["failure"].startswith("the service's storage is full (no space left in the storage folder)")
    assert "Traceback" not in caplog.text


def _cut_jpeg_frame(path, keep: float = 0.5) -> bytes:
    """The slice with its JPEG-lossless frame cut to ``keep`` of its length (a transfer cut short upstream)."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(path)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame[: int(len(frame) * keep)]])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_a_slice_whose_compressed_frame_was_cut_short_is_refused_and_the_series_goes_on(client):
    """Was: accepted without a word (the JPEG decoder fills the missing half with noise) and analysed."""
    files = [file_field(p, f"IM{i:04d}.dcm") for i, p in enumerate(CT_SERIES[:4])]
    files.append(file_field(CT_SERIES[4], "IM0004.dcm", _cut_jpeg_frame(CT_SERIES[4])))
    response = client.post("/api/studies", files=files)
    assert response.status_code == 201, response.text
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "done" and study["n_files"] == 4
    (error,) = study["errors"]
    assert error["file"] == "file-005.dcm" and "frame(s) 1 cut short" in error["reason"]


def _database_down(*_args, **_kwargs):
    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection to server at 127.0.0.1 failed: refused"))


def test_the_database_down_is_503_in_one_line_and_retrying_loops_log_one_line(client, monkeypatch, caplog):
    """Seen with a real PostgreSQL stopped under the service: 500 'Internal Server Error' to every API call and
    about 50 tracebacks in the log within 3 s (the job, closer and export loops retrying). It recovered on its own."""
    import logging

    monkeypatch.setattr(client.app.state.core.db, "session", _database_down)
    response = client.get("/api/studies")
    assert response.status_code == 503 and response.json()["detail"].startswith("the service's database is unavailable")
    from lesiondx.service import storage

    monkeypatch.setattr(storage, "_last_logged", {})
    loop = logging.getLogger("lesiondx.test-loop")
    for _ in range(20):  # a loop retrying every 0.5 s (its own message: the app's worker thread, retrying against
        try:              # the same database, logs "cannot claim a job" itself and would hold back this line)
            _database_down()
        except Exception as exc:
            storage.log_failure(loop, "test loop retrying", exc)
    lines = [r for r in caplog.records if r.name == "lesiondx.test-loop"]
    assert len(lines) == 1 and not lines[0].exc_info and "database is unavailable" in lines[0].getMessage()
    assert "Traceback" not in caplog.text
