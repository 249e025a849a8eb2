"""Safety: de-identification before storage, salt file, API token, loopback rule, audit log without PHI."""

from __future__ import annotations

import io
import stat

import pydicom
import pytest

from lesiondx.service.settings import Settings, SettingsError, load_salt
from lesiondx.service.server import build_settings

from service_helpers import CT_SERIES, US_IMAGES, file_field, wait_study


def _stored_dicom(tmp_path):
    return [pydicom.dcmread(p) for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]


def test_dicom_is_deidentified_before_storage_and_empty_sop_uids_are_assigned(client, tmp_path):
    original = pydicom.dcmread(CT_SERIES[0], stop_before_pixels=True)
    assert str(original.get("SOPInstanceUID", "")) == ""  # the real example files lack one
    with_phi = pydicom.dcmread(CT_SERIES[0])
    with_phi.PatientName, with_phi.InstitutionName = "Doe^Jane", "St Elsewhere Hospital"
    buffer = io.BytesIO()
    with_phi.save_as(buffer)
    files = [file_field(CT_SERIES[0], "a.dcm", buffer.getvalue())] + [file_field(p) for p in CT_SERIES[1:3]]
    sid = client.post("/api/studies", files=files).json()["id"]
    assert wait_study(client, sid)["status"] == "done"
    stored = _stored_dicom(tmp_path)
    assert len(stored) == 3
    sops = {str(ds.SOPInstanceUID) for ds in stored}
    assert len(sops) == 3 and all(s.startswith("2.25.") for s in sops)
    for ds in stored:
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientID).startswith("ANON-") and str(ds.PatientName) == str(ds.PatientID)
        assert str(ds.StudyInstanceUID) != str(original.StudyInstanceUID)
        assert "InstitutionName" not in ds and not ds.get("StudyDate")  # PS3.15: removed / emptied
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert len({str(ds.StudyInstanceUID) for ds in stored}) == 1  # one study stays one study
    everything = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert str(original.StudyInstanceUID).encode() not in everything
    assert b"Doe^Jane" not in everything and b"Elsewhere" not in everything


def test_salt_is_created_once_private_and_stable(tmp_path):
    first = load_salt(tmp_path)
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600 and len(first) >= 32
    assert load_salt(tmp_path) == first
    assert load_salt(tmp_path / "other") != first


def test_off_loopback_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("LESIONDX_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="LESIONDX_TOKEN"):
        build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    assert build_settings(host="127.0.0.1", port=8000, db=None, storage=tmp_path, dicom_port=None,
                          dicom_aet="LESIONDX").token is None
    monkeypatch.setenv("LESIONDX_TOKEN", "s3cret-token-value")
    settings = build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    assert settings.token == "s3cret-token-value"


def test_token_is_required_when_configured(make_client):
    client = make_client(token="t0ken-abc")
    assert client.get("/api/health").status_code == 200  # liveness stays open
    assert client.get("/api/studies").status_code == 401
    assert client.get("/api/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
    denied = client.post("/api/studies", files=[file_field(US_IMAGES[0])])
    assert denied.status_code == 401
    auth = {"Authorization": "Bearer t0ken-abc"}
    sid = client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers=auth).json()["id"]
    study = wait_study(client, sid, headers=auth)
    assert client.get(study["results"][0]["overlays"][0]["url"]).status_code == 401
    assert client.get(study["results"][0]["overlays"][0]["url"], headers=auth).status_code == 200
    assert client.get("/api/reader/export.csv").status_code == 401


def test_audit_log_records_who_did_what_without_phi(client):
    who = {"X-Lesiondx-User": "dr.house"}
    files = [file_field(CT_SERIES[0], "Doe_Jane_chest.dcm", CT_SERIES[0].read_bytes())]
    sid = client.post("/api/studies", files=files, headers=who).json()["id"]
    wait_study(client, sid, headers=who)
    client.post("/api/studies", files=[file_field(US_IMAGES[0], "Smith_John.dcm", b"junk")], headers=who)
    events = client.get("/api/audit").json()
    actions = [(e["actor"], e["action"], e["study_id"]) for e in events]
    assert ("dr.house", "upload", sid) in actions and ("dr.house", "read", sid) in actions
    assert ("dr.house", "upload_rejected", None) in actions
    text = str(events)
    assert "Doe" not in text and "Smith" not in text and ".dcm" not in text


def test_settings_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONDX_PACS", "ORTHANC@127.0.0.1:4242")
    monkeypatch.setenv("LESIONDX_MAX_REQUEST_MB", "5")
    settings = Settings.from_env(tmp_path)
    assert (settings.pacs.aet, settings.pacs.host, settings.pacs.port) == ("ORTHANC", "127.0.0.1", 4242)
    assert settings.max_request_bytes == 5 * 1024 * 1024
    monkeypatch.setenv("LESIONDX_PACS", "no-port-here")
    with pytest.raises(SettingsError):
        Settings.from_env(tmp_path)


def test_cli_serve_refuses_off_loopback_without_token(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lesiondx.cli import app

    monkeypatch.delenv("LESIONDX_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--storage", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "LESIONDX_TOKEN" in result.output + (result.stderr if result.stderr_bytes is not None else "")
