import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth.main import create_app
from app.auth.settings import Settings
from harness.seed import DEMO_PASSWORD
from tests.auth.helpers import make_settings


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings fall back to AUTH_* variables; a developer's shell must not change the tests.
    for name in list(os.environ):
        if name.startswith("AUTH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def registrar_token(client: TestClient) -> str:
    reply = client.post("/login", json={"username": "rhenderson", "password": DEMO_PASSWORD})
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]
