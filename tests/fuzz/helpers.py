"""Plain helpers for the fuzz and abuse tests: both services on fresh databases, real tokens
turned into the gateway's identity headers, database dumps, and the tallies printed at the end."""

import os
import sqlite3
from collections import Counter
from pathlib import Path
from unittest import mock

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import ASGIClient

from app.auth.main import create_app as create_auth_app
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app as create_enrollment_app
from app.enrollment.settings import Settings as EnrollmentSettings
from harness.db import copy_database
from tests.auth.helpers import DEMO_PASSWORD, make_settings, verify_with_pyjwt
from tests.enrollment.helpers import identity_headers, make_secret_file

# Bounded and repeatable: a fixed seed, derandomized generation, no example database. No deadline
# or speed check: generation time depends on the machine's load, and a busy CI machine must not
# fail a correct run.
FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz_config(max_examples: int, checks: dict | None = None) -> schemathesis.Config:
    """Schemathesis's coverage phase plus `max_examples` generated cases per operation, positive
    and negative, with a fixed seed."""
    return schemathesis.Config.from_dict(
        {
            "seed": 449,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": checks or {},
        }
    )


class InProcessSession(ASGIClient):
    """schemathesis's in-process client (its ASGI transport), one for a whole module's calls
    (`case.call(session=...)`) where it makes a new one per call: no proxy looked up in the
    environment for each request (requests does, iterating os.environ: a tenth of the fuzz
    module's time) and, as on a new client, no cookie kept from one call to the next."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.trust_env = False

    def request(self, *args, **kwargs):
        try:
            return super().request(*args, **kwargs)
        finally:
            self.cookies.clear()


# What the fuzz and abuse tests tried; tests/fuzz/conftest.py prints it after the run.
TALLY: Counter[str] = Counter()


class Service:
    """A TestClient on one service, its database file, and the headers to call it with."""

    def __init__(self, client: TestClient, database: Path, headers: dict[str, str]) -> None:
        self.client, self.database, self.headers = client, database, headers


def enrollment_app(root: Path) -> tuple[FastAPI, Path, str]:
    """The enrollment app on a freshly seeded database under `root`: (app, database, secret)."""
    database = root / "enroll.db"
    init_db(database)
    secret_file = make_secret_file(root)
    settings = EnrollmentSettings(
        database=database, gateway_secret_file=secret_file, instance="fuzz"
    )
    return create_enrollment_app(settings), database, secret_file.read_text()


def auth_app(root: Path) -> tuple[FastAPI, Path]:
    """The auth app on a freshly seeded users database and key pair under `root`."""
    # Settings also read AUTH_* variables; a developer's shell must not turn this into a replica.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    with mock.patch.dict(os.environ, clean, clear=True):
        settings = make_settings(root)
        return create_auth_app(settings), settings.database


def sign_in(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> dict:
    """Log in at the auth service: its tokens, plus the access token's claims as the gateway
    sees them once it has verified the signature against the JWKS."""
    reply = client.post("/login", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    tokens = reply.json()
    return {**tokens, "claims": verify_with_pyjwt(client, tokens["access_token"])}


def gateway_headers(secret: str, claims: dict) -> dict[str, str]:
    """The identity headers KrakenD sets from a verified access token (propagate_claims)."""
    return identity_headers(
        secret, int(claims["sub"]), claims["preferred_username"], *claims["roles"]
    )


# database -> (its inode, a connection kept open on it, data_version at the last dump, the dump)
_DUMPS: dict[Path, tuple[int, sqlite3.Connection, int, str]] = {}


def dump(database: Path) -> str:
    """Every table's schema and every row as SQL text: equal dumps, unchanged database.

    The text is read again only after a commit: PRAGMA data_version, asked of a connection kept
    open on the file, changes whenever any other connection commits, so an unchanged version
    means the text of the last dump. (The abuse tests compare some 5,000 dumps, nearly all
    after a refusal that wrote nothing: reading each whole was a quarter of their time.)"""
    inode = database.stat().st_ino
    kept = _DUMPS.get(database)
    if kept is None or kept[0] != inode:
        if kept is not None:
            kept[1].close()
        kept = (inode, sqlite3.connect(database, check_same_thread=False), -1, "")
    _, conn, last_version, last_dump = kept
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    if version == last_version:
        return last_dump
    text = "\n".join(conn.iterdump())  # a commit made meanwhile changes the version again
    _DUMPS[database] = (inode, conn, version, text)
    return text


def rows(database: Path) -> Counter[tuple]:
    """Every row of every table as (table, *values), to see exactly what a request added."""
    conn = sqlite3.connect(database)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return Counter(
            (table, *row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')
        )
    finally:
        conn.close()


def restore(pristine: Path, database: Path) -> None:
    """Put `database` back to the content of `pristine`."""
    copy_database(pristine, database)


def snapshot(database: Path, pristine: Path) -> None:
    """Copy `database`, WAL included, to `pristine`."""
    copy_database(database, pristine)
