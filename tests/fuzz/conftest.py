"""Fixtures of the abuse tests, and the summary lines of what the fuzz and abuse tests tried."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fuzz.helpers import Service, auth_app, enrollment_app, gateway_headers, sign_in


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[Service]:
    app, database = auth_app(tmp_path / "auth")
    with TestClient(app) as client:
        yield Service(client, database, {})


@pytest.fixture(scope="session")
def registrar(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The claims of a real access token of the seed registrar, from the auth service."""
    app, _ = auth_app(tmp_path_factory.mktemp("auth"))
    with TestClient(app) as client:
        return sign_in(client, "rhenderson")["claims"]


@pytest.fixture
def enrollment(tmp_path: Path, registrar: dict) -> Iterator[Service]:
    """The enrollment service, called as the seed registrar with the gateway's headers."""
    app, database, secret = enrollment_app(tmp_path / "enroll")
    with TestClient(app) as client:
        yield Service(client, database, gateway_headers(secret, registrar))
