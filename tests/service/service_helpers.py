"""Helpers shared by the service tests (unique module name: several test folders have a conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
US_IMAGES = sorted((ROOT / "examples/aul_liver_us_mini/images").glob("*.jpg"))
CT_SERIES = sorted((ROOT / "examples/covid_ct_md_mini/series/P002").glob("*.dcm"))
SHARED_DATA = Path(os.environ.get("LESIONDX_SHARED_DATA", ROOT.parent / "shared" / "data"))
IRCADB = SHARED_DATA / "liver_ircadb01_p01_p07" / "ct" / "p01"
ARTIFACTS = ROOT / "test-artifacts"
STUB = "lesiondx.service.testing:stub_predictor"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_study(client: Any, study_id: str, timeout: float = 30.0, headers: dict | None = None) -> dict:
    """Poll until the study is done or failed; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/studies/{study_id}", headers=headers or {}).json()
        if body["status"] in ("done", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"study {study_id} still {body['status']} after {timeout}s: {body}")
        time.sleep(0.1)


def file_field(path: Path, name: str | None = None, content: bytes | None = None) -> tuple[str, tuple]:
    return ("files", (name or path.name, path.read_bytes() if content is None else content, "application/octet-stream"))


class LiveServer:
    """``lesiondx.service.server.run_server`` in a subprocess on 127.0.0.1 (killed at teardown)."""

    def __init__(self, storage: Path, *, dicom_port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.storage, self.dicom_port = storage, dicom_port
        self.port = free_port()
        self.env = {**os.environ, "LESIONDX_PREDICTOR": STUB, "LESIONDX_LOG_LEVEL": "WARNING", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "LiveServer":
        code = ("from pathlib import Path; from lesiondx.service.server import run_server; "
                f"run_server(host='127.0.0.1', port={self.port}, db=None, storage=Path({str(self.storage)!r}), "
                f"dicom_port={self.dicom_port!r}, dicom_aet='LESIONDX')")
        log = open(self.storage.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   f"{(self.storage.parent / f'server-{self.port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("server did not come up")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)
