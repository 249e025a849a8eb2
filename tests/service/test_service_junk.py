"""Junk uploads: 4xx with a reason when the whole request is junk, per-file errors when mixed,
and the service stays up."""

from __future__ import annotations

import io
import zipfile

import pytest

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
