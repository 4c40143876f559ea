"""An enrollment instance on a LiteFS read replica (app/enrollment/relay.py, bin/multihost's h2
and h3), in process: its reads are its own, every write is made by the primary's instance (here
another app in process, reached through the relay's client), and nothing is ever written to the
replica's own file. tests/multihost shows the same on real hosts."""

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.relay import RELAYED_HEADER, ReplicaRelay
from app.enrollment.settings import Settings
from tests.enrollment.helpers import LIAM, Api, make_secret_file


@dataclass
class Pair:
    replica: Api  # the replica instance, as the gateway calls it
    primary_db: Path


def replica_app(settings: Settings, transport: httpx.AsyncBaseTransport) -> FastAPI:
    app = create_app(settings)
    (relay,) = [m for m in app.user_middleware if m.cls is ReplicaRelay]
    relay.kwargs["transport"] = transport  # the middleware stack is built at the first request
    return app


def start(tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None) -> Iterator[Pair]:
    secret_file = make_secret_file(tmp_path)
    primary_db = tmp_path / "primary" / "enroll.db"
    init_db(primary_db)
    replica_db = tmp_path / "replica" / "enroll.db"
    replica_db.parent.mkdir()
    shutil.copy(primary_db, replica_db)  # the copy LiteFS keeps: the same seed
    primary = create_app(
        Settings(database=primary_db, gateway_secret_file=secret_file, instance="primary")
    )
    settings = Settings(
        database=replica_db,
        gateway_secret_file=secret_file,
        instance="replica",
        primary_urls=("http://primary.test",),
    )
    app = replica_app(settings, transport or httpx.ASGITransport(app=primary))
    with TestClient(app) as client:
        yield Pair(Api(client, secret_file.read_text(), replica_db), primary_db)


def primary_row(pair: Pair, sql: str, *args: object) -> tuple | None:
    conn = sqlite3.connect(pair.primary_db)
    try:
        row = conn.execute(sql, args).fetchone()
        return None if row is None else tuple(row)
    finally:
        conn.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    yield from start(tmp_path)


def test_a_write_on_a_replica_is_made_by_the_primary(pair: Pair):
    before = pair.replica.dump()
    sections = pair.replica.as_(LIAM).get("/sections").json()
    open_section = next(s["id"] for s in sections if s["seats_available"] > 0)
    key = {"Idempotency-Key": "relay-test-1"}
    body = {"section_id": open_section}
    first = pair.replica.as_(LIAM).post(f"/users/{LIAM[0]}/enrollments", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = pair.replica.as_(LIAM).post(f"/users/{LIAM[0]}/enrollments", json=body, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())  # the primary's record
    assert pair.replica.dump() == before  # nothing written to the replica's file
    row = primary_row(pair, "SELECT section_id, user_id FROM enrollments WHERE id = ?",
                      first.json()["id"])  # fmt: skip
    assert row == (open_section, LIAM[0])


def test_a_read_that_must_write_first_is_relayed_whole(pair: Pair):
    """A caller's first request writes their record (app/enrollment/deps.py `identify`): on a
    replica the whole GET is the primary's to answer."""
    before = pair.replica.dump()
    newcomer = (7001, "newcomer", "student")
    answer = pair.replica.as_(newcomer).get("/users/7001/enrollments")
    assert (answer.status_code, answer.json()) == (200, [])
    assert pair.replica.dump() == before
    assert primary_row(pair, "SELECT username FROM users WHERE id = 7001") == ("newcomer",)


def test_without_a_primary_writes_are_503_and_reads_go_on(tmp_path: Path):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for pair in start(tmp_path, httpx.MockTransport(refuse)):
        before = pair.replica.dump()
        listed = pair.replica.as_(LIAM).get("/sections")
        assert listed.status_code == 200
        refused = pair.replica.as_(LIAM).post(f"/users/{LIAM[0]}/enrollments",
                                              json={"section_id": 1})  # fmt: skip
        assert refused.status_code == 503
        assert refused.json()["code"] == "primary_unavailable"
        assert pair.replica.dump() == before


def test_a_replica_never_relays_a_relayed_request(pair: Pair):
    """A primary URL that names a replica would relay in a loop: refused at once instead."""
    answer = pair.replica.as_(LIAM).post(
        f"/users/{LIAM[0]}/enrollments", json={"section_id": 1}, headers={RELAYED_HEADER: "1"}
    )
    assert answer.status_code == 503
    assert answer.json()["code"] == "primary_unavailable"
