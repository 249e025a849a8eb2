"""Upload admission on a live server: a bounded number of uploads at once, 503 with Retry-After beyond (status
requests stay quick), 408 for a stalled body, whose place is then free again."""

from __future__ import annotations

import os
import socket
import time

from service_helpers import US_IMAGES, file_field, wait_study


def _stalled_upload(port: int) -> socket.socket:
    """An upload whose client sends the headers and a few bytes of a 1 MB body, then nothing (slow loris)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n"
                 b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\nContent-Disposition: form-data; "
                 b'name="files"; filename="a.png"\r\n\r\n\x89PNG')
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def test_uploads_beyond_the_limit_get_503_and_a_stalled_one_408_while_status_stays_quick(live_server, tmp_path):
    server = live_server(env={"LESIONDX_MAX_UPLOADS": "1", "LESIONDX_UPLOAD_WAIT_S": "0.5",
                              "LESIONDX_UPLOAD_IDLE_S": "3"}).start(timeout=120)
    stalled = _stalled_upload(server.port)
    try:
        time.sleep(0.5)  # the stalled upload holds the only place
        with server.client() as http:
            busy = http.post("/api/studies", files=[file_field(US_IMAGES[0])])
            assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0, busy.text
            assert "LESIONDX_MAX_UPLOADS" in busy.json()["detail"]
            started = time.monotonic()
            assert http.get("/api/health").status_code == 200
            assert time.monotonic() - started < 2  # no thread is held by the waiting or stalled upload
            answer = _answer(stalled, timeout=30)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            after = http.post("/api/studies", files=[file_field(US_IMAGES[0])])
            assert after.status_code == 201, after.text
            assert wait_study(http, after.json()["id"], timeout=60)["status"] == "done"
    finally:
        stalled.close()


def test_no_waiting_allowed_still_takes_uploads_while_a_place_is_free(make_client):
    client = make_client(upload_wait_s=0.0, max_uploads=1)
    assert client.post("/api/studies", files=[file_field(US_IMAGES[0])]).status_code == 201


def test_readiness_fails_while_the_storage_folder_cannot_be_written(make_client, tmp_path):
    """Was: with the storage folder turned read-only every upload got 503 and every job failed, while /api/ready
    kept answering 200 ``{"ready": true, "problems": []}``, so no monitor noticed."""
    import shutil
    import subprocess

    import pytest

    client = make_client()
    root = tmp_path / "store"
    assert client.get("/api/ready").json() == {"ready": True, "problems": []}
    if os.geteuid() != 0:  # the mode bits bind every user but root
        root.chmod(0o555)
    elif not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode:
        pytest.skip("running as root on a file system without chattr +i: cannot make the folder read-only")
    try:
        ready = client.get("/api/ready")
        health = client.get("/api/health")
    finally:
        if os.geteuid() != 0:
            root.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(root)], check=True)
    assert ready.status_code == 503 and ready.json()["problems"] == [
        "the service cannot write to the storage folder (permission denied or read-only): check its owner and mode"]
    assert health.status_code == 200 and health.json()["problems"] == ready.json()["problems"]  # liveness stays
    assert client.get("/api/ready").json() == {"ready": True, "problems": []}
