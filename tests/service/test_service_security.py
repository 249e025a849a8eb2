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
    client = make_client(token="t0ken-abc-0123456789")
    assert client.get("/api/health").status_code == 200  # liveness stays open
    assert client.get("/api/studies").status_code == 401
    assert client.get("/api/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
    denied = client.post("/api/studies", files=[file_field(US_IMAGES[0])])
    assert denied.status_code == 401
    assert client.get("/api/studies", headers={"Authorization": "Bearer t0ken-abc"}).status_code == 401  # a prefix
    auth = {"Authorization": "Bearer t0ken-abc-0123456789"}
    sid = client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers=auth).json()["id"]
    study = wait_study(client, sid, headers=auth)
    assert client.get(study["results"][0]["overlays"][0]["url"]).status_code == 401
    assert client.get(study["results"][0]["overlays"][0]["url"], headers=auth).status_code == 200
    assert client.get("/api/reader/export.csv").status_code == 401


def test_audit_log_records_the_authenticated_user_without_phi(make_client, tmp_path, monkeypatch):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# user: token\ndr.house: house-token-0123456789\ndr.grey: grey-token-0123456789\n")
    monkeypatch.setenv("LESIONDX_TOKENS_FILE", str(tokens))
    settings = Settings.from_env(tmp_path / "store")
    assert settings.user_tokens == (("dr.house", "house-token-0123456789"), ("dr.grey", "grey-token-0123456789"))
    client = make_client(user_tokens=settings.user_tokens)
    house = {"Authorization": "Bearer house-token-0123456789", "X-Lesiondx-User": "dr.grey"}  # the header is ignored
    files = [file_field(CT_SERIES[0], "Doe_Jane_chest.dcm", CT_SERIES[0].read_bytes())]
    sid = client.post("/api/studies", files=files, headers=house).json()["id"]
    wait_study(client, sid, headers=house)
    client.post("/api/studies", files=[file_field(US_IMAGES[0], "Smith_John.dcm", b"junk")], headers=house)
    grey = {"Authorization": "Bearer grey-token-0123456789"}
    assert client.get(f"/api/studies/{sid}", headers=grey).status_code == 200
    events = client.get("/api/audit", headers=grey).json()
    actions = [(e["actor"], e["action"], e["study_id"]) for e in events]
    assert ("dr.house", "upload", sid) in actions and ("dr.house", "read", sid) in actions
    assert ("dr.house", "upload_rejected", None) in actions and ("dr.grey", "read", sid) in actions
    assert ("dr.grey", "upload", sid) not in actions
    text = str(events)
    assert "Doe" not in text and "Smith" not in text and ".dcm" not in text


def test_token_less_actor_is_anonymous_whatever_the_client_declares(client):
    client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers={"X-Lesiondx-User": "dr.house"})
    assert {e["actor"] for e in client.get("/api/audit").json()} == {"anonymous"}


def test_settings_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONDX_PACS", "ORTHANC@127.0.0.1:4242")
    monkeypatch.setenv("LESIONDX_MAX_REQUEST_MB", "5")
    settings = Settings.from_env(tmp_path)
    assert (settings.pacs.aet, settings.pacs.host, settings.pacs.port) == ("ORTHANC", "127.0.0.1", 4242)
    assert settings.max_request_bytes == 5 * 1024 * 1024
    monkeypatch.setenv("LESIONDX_PACS", "no-port-here")
    with pytest.raises(SettingsError):
        Settings.from_env(tmp_path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("LESIONDX_STUDY_QUIET_S", "soon", "is not a number"),
    ("LESIONDX_WORKERS", "2.5", "whole number"),
    ("LESIONDX_WORKERS", "-1", "at least 0"),
    ("LESIONDX_JOB_TIMEOUT_S", "inf", "finite"),
    ("LESIONDX_MAX_FILE_MB", "0", "at least"),
    ("LESIONDX_ZIP_MAX_RATIO", "nan", "finite"),
    ("LESIONDX_EXPORT_MAX_ATTEMPTS", "0", "at least 1"),
    ("LESIONDX_EXPORT_RETRY_S", "30,-5", "at least 0"),
])
def test_bad_numbers_in_the_environment_name_the_variable(tmp_path, monkeypatch, name, text, message):
    monkeypatch.setenv(name, text)
    with pytest.raises(SettingsError, match=f"{name}.*{message}"):
        Settings.from_env(tmp_path)


def test_numbers_in_the_environment_reach_the_settings_in_their_units(tmp_path, monkeypatch):
    for name, text in {"LESIONDX_STUDY_QUIET_S": " 2.5 ", "LESIONDX_WORKERS": "3", "LESIONDX_MAX_FILE_MB": "1.5",
                       "LESIONDX_ZIP_MAX_RATIO": "50", "LESIONDX_EXPORT_RETRY_S": "5, 60",
                       "LESIONDX_RETENTION_DAYS": "0"}.items():
        monkeypatch.setenv(name, text)
    settings = Settings.from_env(tmp_path)
    assert settings.study_quiet_seconds == 2.5 and settings.workers == 3
    assert settings.max_file_bytes == int(1.5 * 1024 * 1024) and settings.zip_max_ratio == 50.0
    assert settings.export_retry_seconds == (5.0, 60.0) and settings.retention_days == 0.0


def test_cli_serve_refuses_off_loopback_without_token(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lesiondx.cli import app

    monkeypatch.delenv("LESIONDX_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--storage", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "LESIONDX_TOKEN" in result.output + (result.stderr if result.stderr_bytes is not None else "")


# -- safe web defaults (issue 15 item 6) ------------------------------------------------------------------

def test_cross_site_post_is_refused_in_token_less_mode_same_origin_works(client):
    evil = {"Origin": "http://evil.example", "Referer": "http://evil.example/form.html"}
    refused = client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers=evil)
    assert refused.status_code == 403 and "cross-site" in refused.json()["detail"]
    for headers in ({"Origin": "null"}, {"Referer": "http://evil.example/x"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://localhost:9999"}):  # another port is another origin
        assert client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers=headers).status_code == 403
    assert client.get("/api/studies").json() == []  # nothing was created
    same = client.post("/api/studies", files=[file_field(US_IMAGES[0])], headers={"Origin": "http://localhost"})
    assert same.status_code == 201
    assert client.post("/api/studies", files=[file_field(US_IMAGES[0])]).status_code == 201  # curl: no Origin
    assert client.post("/api/reader/cases", json={"cases": [{"case_id": "c", "study_id": same.json()["id"],
                                                             "truth": "benign"}]},
                       headers={"Origin": "http://evil.example"}).status_code == 403


def test_forged_host_is_refused_dns_rebinding(client, make_client, tmp_path):
    sid = client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", ""):
        response = client.get(f"/api/studies/{sid}", headers={"Host": host})
        assert response.status_code == 400, host
        assert sid not in response.text and "x-frame-options" in response.headers
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "10.1.2.3"):
        assert client.get(f"/api/studies/{sid}", headers={"Host": host}).status_code == 200, host
    named = make_client(allowed_hosts=("lesiondx.example.org",), storage=tmp_path / "other")
    assert named.get("/api/health", headers={"Host": "lesiondx.example.org"}).status_code == 200
    assert named.get("/api/health", headers={"Host": "example.org"}).status_code == 400


def test_security_headers_on_every_response_and_no_inline_script_without_its_hash(client):
    import base64
    import hashlib
    import re

    for path in ("/", "/reader", "/studies/abc", "/docs", "/redoc", "/api/health", "/api/studies/nope",
                 "/static/app.js", "/openapi.json"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        if response.headers["content-type"].startswith("text/html"):
            for body in re.findall(r"<script(?![^>]*src=)[^>]*>(.*?)</script>", response.text, re.S):
                digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                assert f"'sha256-{digest}'" in script_src, path  # each inline script is allowed by its hash only
    assert "<script>" not in client.get("/docs").text  # Swagger UI starts from a static file


def test_short_or_shared_tokens_are_refused_before_start(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONDX_TOKEN", "x")
    with pytest.raises(SettingsError, match="at least 16"):
        build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    monkeypatch.delenv("LESIONDX_TOKEN")
    monkeypatch.setenv("LESIONDX_TOKENS", "alice:short")
    with pytest.raises(SettingsError, match="user 'alice'.*at least 16") as info:
        build_settings(host="127.0.0.1", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    assert "short" not in str(info.value).replace("alice", "")  # the token itself is never printed
    monkeypatch.setenv("LESIONDX_TOKENS", "alice:same-token-0123456789,bob:same-token-0123456789")
    with pytest.raises(SettingsError, match="share"):
        build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None, dicom_aet="LESIONDX")
    monkeypatch.setenv("LESIONDX_TOKENS", "alice:alice-token-0123456789,bob:bob-token-0123456789")
    settings = build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None,
                              dicom_aet="LESIONDX")
    assert settings.identities == {"alice-token-0123456789": "alice", "bob-token-0123456789": "bob"}
    with pytest.raises(SettingsError, match="at least 16"):
        Settings(storage=tmp_path, token="0123456789").check_safe()  # create_app refuses it too


def test_cli_serve_refuses_a_short_token_with_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lesiondx.cli import app

    monkeypatch.setenv("LESIONDX_TOKEN", "abc")
    result = CliRunner().invoke(app, ["serve", "--storage", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().startswith("error: LESIONDX_TOKEN is 3 characters; use at least 16")  # no path prefix
    assert "abc" not in result.output


def test_dicom_node_listens_on_loopback_even_when_http_does_not(tmp_path, monkeypatch):
    from lesiondx.service.core import ServiceCore
    from lesiondx.service.testing import stub_predictor

    from service_helpers import free_port

    monkeypatch.setenv("LESIONDX_TOKEN", "a-long-enough-token-0123")
    settings = build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=free_port(),
                              dicom_aet="LESIONDX")
    assert settings.dicom_host == "127.0.0.1"
    core = ServiceCore(settings, stub_predictor)
    core.start()
    try:
        assert core.dicom_node._server.server_address[0] == "127.0.0.1"
    finally:
        core.stop()
    chosen = build_settings(host="0.0.0.0", port=8000, db=None, storage=tmp_path, dicom_port=None,
                            dicom_aet="LESIONDX", dicom_host="0.0.0.0")
    assert chosen.dicom_host == "0.0.0.0"  # only when told


def test_errors_echo_no_upload_bytes_and_no_server_paths(client, tmp_path):
    secret = b"PATIENT-BYTES-" + b"7" * 64
    response = client.post("/api/studies", files=[("files", ("", secret, "application/octet-stream"))])
    assert response.status_code in (400, 422)
    assert b"PATIENT-BYTES" not in response.content and "input" not in response.text
    bad = client.post("/api/reader/reads", json={"reader": "r1 <script>", "case_id": "c", "with_ai": True,
                                                 "answer": "SECRET-ANSWER-TEXT", "confidence": 9})
    assert bad.status_code == 422 and "SECRET-ANSWER-TEXT" not in bad.text and "<script>" not in bad.text


def test_server_paths_are_cut_from_failure_messages(make_client, tmp_path):
    from lesiondx.service.websafety import scrub_paths

    def failing(task, inputs, out, model="default", **options):
        raise ValueError(f"{inputs[0]}: cannot use this image (see {out}/log.txt)")

    client = make_client(predictor=failing)
    sid = client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
    study = wait_study(client, sid)
    assert study["status"] == "failed" and "cannot use this image" in study["failure"]
    assert str(tmp_path) not in study["failure"] and "/tmp" not in study["failure"] and "log.txt" in study["failure"]
    assert scrub_paths("read /srv/lesiondx/store/jobs/ab12/IM0001.dcm: bad") == "read IM0001.dcm: bad"
    assert scrub_paths("size 5/10, url http://x/a/b, limit 100 MB") == "size 5/10, url http://x/a/b, limit 100 MB"


def test_host_and_origin_rules_behind_a_proxy_and_with_wildcards():
    from lesiondx.service.websafety import cross_site_reason, host_allowed

    allowed = ("*.example.org", "lesiondx.lan")
    assert host_allowed("a.example.org", allowed) and host_allowed("LESIONDX.lan:8443", allowed)
    assert not host_allowed("example.org", allowed) and not host_allowed("evil-example.org", allowed)
    assert not host_allowed("lesiondx.lan.evil.example", allowed) and host_allowed("anything", ("*",))
    # TLS ends at a proxy that passes Host on: the https Origin on the default port is the same site
    assert cross_site_reason({"host": "lesiondx.lan", "origin": "https://lesiondx.lan"}) is None
    assert cross_site_reason({"host": "lesiondx.lan:443", "origin": "https://lesiondx.lan"}) is None
    assert cross_site_reason({"host": "lesiondx.lan", "origin": "https://lesiondx.lan.evil.example"})
    assert cross_site_reason({"host": "[::1]:8000", "origin": "http://[::1]:8000"}) is None
    assert cross_site_reason({"host": "127.0.0.1:8000", "referer": "http://127.0.0.1:8000/studies/x"}) is None


@pytest.mark.parametrize("which", ["--dicom-port", "--port"])
def test_cli_serve_with_a_port_in_use_says_so_in_one_line(tmp_path, monkeypatch, which):
    """A port already taken (another PACS tool, a second lesiondx) is refused before anything starts; the DICOM
    port used to end the start-up with pynetdicom's traceback."""
    import socket

    from typer.testing import CliRunner

    from lesiondx.cli import app
    from service_helpers import free_port

    monkeypatch.setenv("LESIONDX_PREDICTOR", "lesiondx.service.testing:stub_predictor")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--dicom-port": str(free_port()), which: str(busy)}
        result = CliRunner().invoke(app, ["serve", "--storage", str(tmp_path / "s"), *(x for kv in ports.items() for x in kv)])
    what = "DICOM" if which == "--dicom-port" else "HTTP"
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines() == [
        f"error: cannot listen for {what} on 127.0.0.1:{busy}: address already in use (another program (or another "
        f"lesiondx) listens there); choose another {which}" + (" (or --dicom-host)" if what == "DICOM" else "")]
    assert not (tmp_path / "s" / "lesiondx.sqlite3").exists()  # nothing started


def test_wrong_tokens_from_one_address_are_answered_429_for_a_while_missing_ones_are_not_counted(make_client, caplog):
    from lesiondx.service.auth import FailedTokens

    client = make_client(token="t0ken-abc-0123456789")
    right, wrong = ({"Authorization": f"Bearer {t}"} for t in ("t0ken-abc-0123456789", "guess-0000000000000"))
    limit = FailedTokens().limit
    assert all(client.get("/api/studies").status_code == 401 for _ in range(limit + 5))  # e.g. the page before login
    assert client.get("/api/studies", headers=right).status_code == 200
    caplog.set_level("WARNING", logger="lesiondx.service")
    assert [client.get("/api/studies", headers=wrong).status_code for _ in range(limit)] == [401] * limit
    paused = client.get("/api/studies", headers=wrong)
    assert paused.status_code == 429 and 1 <= int(paused.headers["Retry-After"]) <= 60
    assert client.get("/api/studies", headers=right).status_code == 429  # no answer tells a right guess from a wrong one
    assert client.get("/api/health").status_code == 200  # liveness stays open
    assert "wrong API tokens from testclient" in caplog.text and "guess-0000" not in caplog.text


def test_the_wrong_token_count_forgets_old_failures_and_stays_bounded(monkeypatch):
    from lesiondx.service import auth

    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    throttle = auth.FailedTokens(limit=3, window_s=60, max_clients=2)
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 60 and throttle.wait_s("10.0.0.2") == 0
    now[0] += 61
    assert throttle.wait_s("10.0.0.1") == 0
    for client in ("a", "b", "c"):
        throttle.failed(client)
    assert list(throttle._seen) == ["b", "c"]


def test_json_logs_are_one_object_per_line(live_server, tmp_path):
    import json
    import signal

    server = live_server(env={"LESIONDX_LOG_FORMAT": "json", "LESIONDX_LOG_LEVEL": "INFO"}).start(timeout=120)
    with server.client() as http:
        study = http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
        assert wait_study(http, study, timeout=60)["status"] == "done"
    server.kill(signal.SIGTERM)
    lines = [line for line in next(tmp_path.glob("server-*.log")).read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "process", "message"} <= set(entries[0])
    assert any("lesiondx service on" in e["message"] for e in entries)
    assert any("worker process" in e["message"] and e["logger"] == "lesiondx.service.worker" for e in entries)


def test_an_unknown_log_format_is_refused_in_one_line(monkeypatch):
    from lesiondx.service.logs import configure_logging

    monkeypatch.setenv("LESIONDX_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="LESIONDX_LOG_FORMAT='xml' is not text or json"):
        configure_logging()
