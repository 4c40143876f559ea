"""Startup hygiene: the service refuses to start on a wrong database or an unsafe secret,
with one clear message, instead of serving errors later."""

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings
from harness.procs import ROOT, free_port
from tests.enrollment.helpers import LIAM, REGISTRAR, Api, make_secret_file


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.enrollment.main:create_app",
           "--host", "127.0.0.1", "--port", str(free_port())]  # fmt: skip
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def good(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "enroll.db"
    init_db(db)
    return {
        "ENROLL_DATABASE": str(db),
        "ENROLL_GATEWAY_SECRET_FILE": str(make_secret_file(tmp_path)),
    }


def refused(env: dict[str, str], message: str) -> None:
    result = start(env)
    assert result.returncode != 0
    assert "enrollment service cannot start" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_database(good, tmp_path):
    refused({**good, "ENROLL_DATABASE": str(tmp_path / "nope.db")}, "does not exist")


def test_another_services_database(good, tmp_path):
    other = tmp_path / "auth.db"
    sqlite3.connect(other).execute("CREATE TABLE users (id INTEGER)").connection.commit()
    refused({**good, "ENROLL_DATABASE": str(other)}, "is not this service's database")


def test_older_schema_version(good):
    conn = sqlite3.connect(good["ENROLL_DATABASE"])
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    refused(good, "schema version 0")


def test_not_a_database(good, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    refused({**good, "ENROLL_DATABASE": str(junk)}, "not a SQLite database")


def test_world_readable_or_missing_secret(good, tmp_path):
    secret = Path(good["ENROLL_GATEWAY_SECRET_FILE"])
    secret.chmod(0o644)
    refused(good, "readable by others")
    refused({**good, "ENROLL_GATEWAY_SECRET_FILE": str(tmp_path / "none")}, "does not exist")


def test_unset_variables_are_named():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")}
    result = subprocess.run(
        [sys.executable, "-c", "from app.enrollment.main import create_app; create_app()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "ENROLL_DATABASE: not set" in result.stderr
    assert "ENROLL_GATEWAY_SECRET_FILE: not set" in result.stderr


def test_an_auth_service_that_never_answers_leaves_an_unknown_id_a_404(tmp_path):
    """The account lookup (app/enrollment/people/directory.py) gives up within its bound: the
    registrar gets the usual 404 naming the id, not a hang or a 500, and nothing is written."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        db_path = tmp_path / "enroll.db"
        init_db(db_path)
        secret_file = make_secret_file(tmp_path)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(
            database=db_path, gateway_secret_file=secret_file, auth_urls=f"{url},{url}"
        )
        with TestClient(create_app(settings)) as client:
            api = Api(client, secret_file.read_text(), db_path)
            before = api.dump()
            reply = api.as_(REGISTRAR).patch("/sections/1", json={"instructor_id": 987654})
            after = api.dump()
    finally:
        silent.close()

    assert reply.status_code == 404 and "987654" in reply.json()["detail"]
    assert after == before


def test_writes_go_on_while_a_section_waits_for_the_auth_service(tmp_path):
    """The registrar's lookup of an instructor at the auth service (the route's `before`) is
    not done inside the write turn: a student's enrollment meanwhile is answered while the
    registrar's change is still waiting, not after it."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers: the lookup waits its whole budget
    try:
        db_path = tmp_path / "enroll.db"
        init_db(db_path)
        secret_file = make_secret_file(tmp_path)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(database=db_path, gateway_secret_file=secret_file, auth_urls=url)
        with TestClient(create_app(settings)) as client:
            api = Api(client, secret_file.read_text(), db_path)
            assert api.as_(LIAM).get(f"/users/{LIAM[0]}").status_code == 200  # LIAM is known
            change: list[int] = []
            registrar = threading.Thread(
                target=lambda: change.append(
                    api.as_(REGISTRAR)
                    .patch("/sections/1", json={"instructor_id": 987654})
                    .status_code
                )
            )
            registrar.start()
            time.sleep(0.1)  # the registrar's request is waiting on the auth service now
            enrolled = api.as_(LIAM).post(f"/users/{LIAM[0]}/enrollments", json={"section_id": 4})
            still_waiting = registrar.is_alive()
            registrar.join(10)
    finally:
        silent.close()

    assert enrolled.status_code == 201
    assert still_waiting, "the enrollment waited for the registrar's lookup at the auth service"
    assert change == [404]
