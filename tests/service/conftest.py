"""Fixtures for the service tests: in-process app with the TEST DOUBLE predictor, live servers in
subprocesses (loopback only). Helpers live in service_helpers.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lesiondx.service.api import create_app
from lesiondx.service.settings import Settings
from lesiondx.service.testing import stub_predictor
from browser_fixtures import browser, offline_browser  # noqa: F401 (the headless Chromium fixtures, for every test here)
from service_helpers import LiveServer, free_port

@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """Factory: a started TestClient around create_app(settings, predictor) in a temp storage."""
    clients: list[TestClient] = []

    def factory(predictor: Any = stub_predictor, **overrides: Any) -> TestClient:
        overrides.setdefault("storage", tmp_path / "store")
        overrides.setdefault("worker_poll_seconds", 0.05)
        overrides.setdefault("workers", 0)  # jobs in a thread: monkeypatched task modules stay visible
        # a Host the service answers to (the default "testserver" is refused by the Host allow-list)
        client = TestClient(create_app(Settings(**overrides), predictor=predictor), base_url="http://localhost")
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Any]:
    """Factory for LiveServer instances; every one is killed at teardown."""
    servers: list[LiveServer] = []

    def factory(**kwargs: Any) -> LiveServer:
        storage = kwargs.pop("storage", tmp_path / "store")
        server = LiveServer(storage, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """LESIONDX_TEST_POSTGRES_URL, or a throw-away PostgreSQL cluster in a temp folder on a free port."""
    if os.environ.get("LESIONDX_TEST_POSTGRES_URL"):
        yield os.environ["LESIONDX_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (pip install -e .[postgres])")
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins and not shutil.which("initdb"):
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    bindir = bins[-1].parent if bins else Path(shutil.which("initdb")).parent
    folder = Path(tempfile.mkdtemp(prefix="lesiondx-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres account
        try:
            shutil.chown(folder, "postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root without a 'postgres' account for a throw-away cluster")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    try:
        subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "lesiondx", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60",
                                  "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a throw-away PostgreSQL cluster: {exc}")
    try:
        yield f"postgresql+psycopg://lesiondx@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
