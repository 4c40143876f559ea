"""A fresh seeded enrollment database per test, served through FastAPI's TestClient."""

import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.common.identity import gateway_headers
from app.enrollment.init_db import PEOPLE as PEOPLE_FILE
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings

PEOPLE = {p["id"]: p for p in json.loads(PEOPLE_FILE.read_text())}


def person(user_id: int) -> tuple:
    """A seed person as (id, username, *roles), the shape `Api.as_` takes."""
    p = PEOPLE[user_id]
    return (p["id"], p["username"], *p["roles"])


# Seed people (share/seed/people.json) the tests act as.
REGISTRAR = (1, "rhenderson", "registrar")
KAVERY = (3, "kavery", "instructor")  # teaches sections 1 and 2 (CPSC 449)
LCHEN = (4, "lchen", "instructor")  # teaches sections 3 and 4 (CPSC 131)
AVA = (9, "ajohnson", "student")  # enrolled in sections 1 and 2
LIAM = (10, "lsmith", "student")


def make_secret_file(directory: Path) -> Path:
    path = directory / "gateway.secret"
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path


identity_headers = gateway_headers  # the headers the gateway sets for a caller


class Api:
    """A TestClient plus the secret, so tests can say `api.as_(AVA).get(...)`."""

    def __init__(self, client: TestClient, secret: str, db_path: Path) -> None:
        self.client = client
        self.secret = secret
        self.db_path = db_path

    def headers(self, who: tuple) -> dict[str, str]:
        user_id, username, *roles = who
        return identity_headers(self.secret, user_id, username, *roles)

    def as_(self, who: tuple) -> "_As":
        return _As(self.client, self.headers(who))

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        return conn

    def dump(self) -> list[tuple]:
        """Every row of every table: to prove a refused request changed nothing."""
        with self.db() as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return [
                (t, *tuple(r)) for t in sorted(tables) for r in conn.execute(f"SELECT * FROM {t}")
            ]


class _As:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def request(self, method: str, url: str, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def __getattr__(self, method: str):
        return lambda url, **kwargs: self.request(method.upper(), url, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    db_path = tmp_path / "enroll.db"
    init_db(db_path)
    secret_file = make_secret_file(tmp_path)
    settings = Settings(database=db_path, gateway_secret_file=secret_file, instance="test")
    with TestClient(create_app(settings)) as client:
        yield Api(client, secret_file.read_text(), db_path)
