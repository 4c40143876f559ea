"""LiteFS replicas: their database is read-only. Login works there and never writes;
registration answers 503 pointing at the primary, never a 500."""

import hashlib

import pytest
from fastapi.testclient import TestClient

from app.auth.main import create_app
from app.common import db
from tests.auth.helpers import make_settings, register, tokens_for, user_count


def _files(database) -> dict[str, str]:
    """Digest of the database and its WAL: any write changes one of them."""
    found = {}
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            found[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.mark.parametrize("read_only_node", [True, False])
def test_login_works_on_a_read_only_database_and_writes_nothing(
    tmp_path, monkeypatch, read_only_node
):
    settings = make_settings(tmp_path, read_only=read_only_node)
    settings.database.chmod(0o444)  # refuses writes outright when the tests run as a normal user
    opened_read_only = []
    real_connect = db.connect

    def recording_connect(path, *, readonly=False, **kwargs):
        if str(path) == str(settings.database):
            opened_read_only.append(readonly)
        return real_connect(path, readonly=readonly, **kwargs)

    monkeypatch.setattr(db, "connect", recording_connect)
    before = _files(settings.database)

    with TestClient(create_app(settings)) as client:
        tokens_for(client, "ajohnson")
        tokens_for(client, "ajohnson")

    # One pooled connection served both (the pool reuses it), and it was read-only. (A refresh
    # writes: a replica relays it to the primary, tests/auth/test_primary_fallback.py.)
    assert opened_read_only == [True]
    after = _files(settings.database)
    empty = (None, hashlib.sha256(b"").hexdigest())  # an empty WAL holds no write
    assert before.pop("auth.db-wal", None) in empty
    assert after.pop("auth.db-wal", None) in empty
    assert after == before


def test_register_on_a_read_only_node_is_503_pointing_at_the_primary(tmp_path):
    settings = make_settings(tmp_path, read_only=True)
    with TestClient(create_app(settings)) as client:
        reply = register(client)

    assert reply.status_code == 503
    assert reply.json()["code"] == "read_replica"
    assert "primary" in reply.json()["detail"]
    assert user_count(settings) == 38


def test_a_litefs_replica_is_recognised_by_its_primary_file(client, settings):
    # LiteFS writes `.primary`, naming the primary, into the mount of every replica.
    (settings.database.parent / ".primary").write_text("auth-primary\n")

    reply = register(client)

    assert reply.status_code == 503
    assert "auth-primary" in reply.json()["detail"]
    assert user_count(settings) == 38
    assert tokens_for(client, "ajohnson")["access_token"]


def test_a_primary_file_gone_while_read_is_a_replica_cut_off_not_a_500(tmp_path, monkeypatch):
    # LiteFS removes `.primary` the moment its primary goes: a register that opened the file
    # then could not read it (FileNotFoundError from the FUSE mount, seen in CI) and was a 500.
    settings = make_settings(tmp_path, read_only=True)
    marker = settings.database.parent / ".primary"
    marker.write_text("auth-primary\n")
    real_read_text = type(marker).read_text

    def vanishing(path, *args, **kwargs):
        if path == marker:
            marker.unlink(missing_ok=True)
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(type(marker), "read_text", vanishing)
    with TestClient(create_app(settings)) as client:
        reply = register(client)

    assert not marker.exists()  # the fault was met
    assert reply.status_code == 503
    assert reply.json()["code"] == "read_replica"
    assert user_count(settings) == 38


def test_a_database_that_refuses_the_write_is_503_not_500(client, settings, monkeypatch):
    # A node that does not know it is a replica: SQLite itself reports the database read-only.
    real_connect = db.connect

    def read_only_auth_db(path, **kwargs):
        if str(path) == str(settings.database):  # the throttle's database stays writable
            kwargs["readonly"] = True
        return real_connect(path, **kwargs)

    monkeypatch.setattr(db, "connect", read_only_auth_db)

    reply = register(client)

    assert reply.status_code == 503
    assert reply.json()["code"] == "read_replica"
    assert user_count(settings) == 38


@pytest.mark.parametrize("path", ["/refresh", "/logout"])
def test_a_session_write_on_a_replica_that_knows_no_primary_is_503_naming_it(tmp_path, path):
    settings = make_settings(tmp_path, read_only=True)
    with TestClient(create_app(settings)) as client:
        token = tokens_for(client, "ajohnson")["refresh_token"]  # a sign-in writes nothing
        reply = client.post(path, json={"refresh_token": token})

    assert (reply.status_code, reply.json()["code"]) == (503, "read_replica")
    assert reply.json()["detail"] == (
        f"this node is a read replica (AUTH_READ_ONLY); POST {path} goes to the primary"
    )
