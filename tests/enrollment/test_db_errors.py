"""What a client sees when the database misbehaves: busy past the busy timeout is 503 with
Retry-After (load, worth a retry); any other database error is a bug, so 500 in the one error
shape, with its traceback in the log, never disguised as load."""

import logging
import sqlite3

import pytest
from fastapi.testclient import TestClient

from app.common import db
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings
from tests.bodies import error_of
from tests.enrollment.helpers import AVA, REGISTRAR, identity_headers, make_secret_file


@pytest.fixture
def app_and_db(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)  # connections are opened after this
    database = tmp_path / "enroll.db"
    init_db(database)
    secret = make_secret_file(tmp_path)
    settings = Settings(database=database, gateway_secret_file=secret, instance="test")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, database, secret.read_text()


def test_a_database_busy_past_the_timeout_is_503_with_retry_after(app_and_db):
    client, database, secret = app_and_db
    headers = identity_headers(secret, *AVA[:2], "student")
    assert client.get("/sections/4", headers=headers).status_code == 200  # user row is current
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        reply = client.post("/users/9/enrollments", json={"section_id": 4}, headers=headers)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert reply.status_code == 503
    assert error_of(reply) == {"detail": "database busy, retry shortly", "code": "unavailable"}
    assert reply.headers["Retry-After"] == "1"


def test_any_other_database_error_is_a_500_with_its_traceback_logged(app_and_db, caplog):
    client, database, secret = app_and_db
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TABLE audit_log")

    with caplog.at_level(logging.ERROR):
        reply = client.get("/audit", headers=identity_headers(secret, *REGISTRAR))

    assert reply.status_code == 500
    assert error_of(reply) == {"detail": "internal error", "code": "internal_error"}
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "no such table" in str(logged[0].exc_info[1])


def test_a_full_disk_is_a_503_with_its_code_and_the_database_stays_intact(app_and_db, monkeypatch):
    client, database, secret = app_and_db
    registrar = identity_headers(secret, *REGISTRAR)
    assert client.get("/courses", headers=registrar).status_code == 200
    # What SQLite answers when the disk is full: SQLITE_FULL once the file may not grow.
    for conn in _pooled(client):
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    before = _dump(database)

    answers = []
    for n in range(200):  # bounded: each course takes room until there is none
        body = {"department_id": 1, "code": f"FULL {100 + n}", "title": "x" * 200}
        answers.append(client.post("/courses", json=body, headers=registrar))
        if answers[-1].status_code != 201:
            break

    refused = answers[-1]
    assert refused.status_code == 503
    assert refused.json()["code"] == "storage_full"
    assert refused.headers["Retry-After"] == "30"
    after = _dump(database)
    assert set(before) <= set(after)  # what was there is still there
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT count(*) FROM courses WHERE code LIKE 'FULL %'").fetchone()
    assert stored[0] == len(answers) - 1  # every 201 is stored, the refused one is not


def test_a_read_only_database_is_a_503_with_its_code_and_nothing_changes(app_and_db, monkeypatch):
    client, database, secret = app_and_db
    headers = identity_headers(secret, *AVA[:2], "student")
    assert client.get("/users/9", headers=headers).status_code == 200
    before = _dump(database)
    for conn in _pooled(client):
        conn.execute("PRAGMA query_only = ON")  # what a read-only file or mount gives SQLite

    reply = client.post("/users/9/enrollments", json={"section_id": 4}, headers=headers)

    assert reply.status_code == 503
    assert reply.json()["code"] == "storage_read_only"
    assert _dump(database) == before


def _pooled(client: TestClient) -> list[sqlite3.Connection]:
    """The app's idle pooled connections, left in their pools: the reading ones (one after a
    request) and the writer's (made at start)."""
    db = client.app.state.db
    return [*db.readers._idle, *db.writers._idle]


def _dump(database) -> list[str]:
    with sqlite3.connect(database) as conn:
        return list(conn.iterdump())
