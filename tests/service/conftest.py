"""Fixtures for the service tests: in-process app with the TEST DOUBLE predictor, live servers in
subprocesses (loopback only). Helpers live in service_helpers.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lesiondx.service.api import create_app
from lesiondx.service.settings import Settings
from lesiondx.service.testing import stub_predictor
from service_helpers import LiveServer

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
