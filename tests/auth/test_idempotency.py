"""Idempotency-Key on the auth service's writes (issue 26; app/common/idempotency.py): made on
the primary, once per key; a registration's key is the request's own, a registrar's theirs; a
refresh's answer, tokens and all, is kept sealed, and its retry under strict rotation gets the
same tokens; a retry while the first still hashes its password is 409 `request_in_progress`; a
replica passes the key on and the primary's answer back byte for byte."""

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.auth import passwords
from app.common import idempotency
from harness.seed import DEMO_PASSWORD
from tests.auth.helpers import (
    GOOD_PASSWORD,
    new_user,
    replica_of,
    stored_user,
    tokens_for,
    user_count,
)
from tests.auth.test_primary_fallback import marked
from tests.bodies import refusal

KEY = "b3b1f4d2-9c0e-4f5a-8d7e-6a5b4c3d2e1f"


def keyed(key: str = KEY, **more: str) -> dict[str, str]:
    return {idempotency.HEADER: key, **more}


def records(settings) -> list[sqlite3.Row]:
    conn = sqlite3.connect(settings.database)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM idempotency_keys ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_registration_retried_with_its_key_is_one_account_and_the_same_201(client, settings):
    first = client.post("/register", json=new_user(), headers=keyed())
    again = client.post("/register", json=new_user(), headers=keyed())
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert idempotency.REPLAYED_HEADER.lower() not in first.headers
    assert stored_user(settings, "newstudent")["id"] == first.json()["id"]
    (stored,) = records(settings)
    # Its own caller: the request's HMAC; the body's digest an HMAC too, never a plain hash of a
    # body holding a password; the answer sealed.
    assert stored["caller"].startswith("request:") and len(stored["caller"]) == 8 + 64
    assert GOOD_PASSWORD.encode() not in stored["body_digest"] + stored["body"]
    assert b"newstudent" not in stored["body"]


def test_a_retry_costs_no_password_hash(client, monkeypatch):
    assert client.post("/register", json=new_user(), headers=keyed()).status_code == 201
    hashed: list[str] = []
    monkeypatch.setattr(passwords, "hash_password", lambda p: hashed.append(p) or "x")
    assert client.post("/register", json=new_user(), headers=keyed()).status_code == 201
    assert hashed == []


def test_a_registrations_key_is_the_requests_own(client, settings):
    """Anyone may use any key: with another body it is another request, made as such (nobody
    can read, or be refused by, a registration of someone else's that used the same key)."""
    first = client.post("/register", json=new_user(), headers=keyed())
    other = client.post("/register", json=new_user(username="otherstudent"), headers=keyed())
    assert first.status_code == other.status_code == 201
    assert idempotency.REPLAYED_HEADER.lower() not in other.headers
    assert other.json()["username"] == "otherstudent"
    assert len({r["caller"] for r in records(settings)}) == 2


def test_a_refused_registration_is_replayed_as_refused(client):
    taken = client.post("/register", json=new_user(username="ajohnson"), headers=keyed())
    again = client.post("/register", json=new_user(username="ajohnson"), headers=keyed())
    assert refusal(taken) == (409, "username_taken")
    assert (again.status_code, again.content) == (409, taken.content)
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"


def test_a_registrars_keys_are_theirs_and_one_key_is_one_request(client, settings, registrar_token):
    bearer = {"Authorization": f"Bearer {registrar_token}"}
    staff = new_user(username="newinstructor", roles=["instructor"])
    made = client.post("/register", json=staff, headers=keyed(**bearer))
    again = client.post("/register", json=staff, headers=keyed(**bearer))
    other = client.post("/register", json={**staff, "username": "another"}, headers=keyed(**bearer))
    assert made.status_code == again.status_code == 201 and again.content == made.content
    assert refusal(other) == (422, "idempotency_key_reused")
    assert stored_user(settings, "another") is None
    assert records(settings)[0]["caller"] == "user:1"
    # The registrar's answers are not sealed: nothing in them is a secret from the database.
    assert records(settings)[0]["body"] == made.content


def test_a_refresh_whose_answer_was_lost_is_retried_under_strict_rotation(client, settings):
    """Without a key, presenting the used refresh token again ends the session (the README's old
    limit: a lost refresh answer meant signing in again). With its key, the retry gets the same
    tokens, and the session goes on with them."""
    token = tokens_for(client, "ajohnson")["refresh_token"]
    first = client.post("/refresh", json={"refresh_token": token}, headers=keyed())
    again = client.post("/refresh", json={"refresh_token": token}, headers=keyed())
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    following = client.post("/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert following.status_code == 200
    # The tokens are kept sealed: not in the database, in any form a reader could use.
    (stored,) = records(settings)
    assert first.json()["access_token"].encode() not in stored["body"]
    assert b"eyJ" not in stored["body"] and token.encode() not in stored["body_digest"]
    # Without the key, the same used token is a reuse, as before.
    assert refusal(client.post("/refresh", json={"refresh_token": token})) == (
        401,
        "refresh_token_reused",
    )


def test_a_sealed_answer_opens_only_with_the_request_that_made_it(client, settings):
    token = tokens_for(client, "ajohnson")["refresh_token"]
    first = client.post("/refresh", json={"refresh_token": token}, headers=keyed())
    (stored,) = records(settings)
    keyed_again = idempotency.Keyed(
        caller=stored["caller"],
        key=KEY,
        method="POST",
        path="/refresh",
        body_digest=stored["body_digest"],
        ttl_seconds=60,
        answer_of=lambda result: idempotency.Answer(200, b""),
        seal_material=b'{"refresh_token":"someone else\'s"}',
        salt=client.app.state.primary.idempotency_secret,
    )
    assert keyed_again.unseal(stored["body"]) is None
    keyed_again.seal_material = idempotency.canonical(f'{{"refresh_token":"{token}"}}'.encode())
    assert keyed_again.unseal(stored["body"]) == first.content


def test_a_key_expires_after_the_ttl(client, settings, monkeypatch):
    clock = [2_000_000.0]
    monkeypatch.setattr(idempotency, "now", lambda: clock[0])
    token = tokens_for(client, "ajohnson")["refresh_token"]
    assert (
        client.post("/refresh", json={"refresh_token": token}, headers=keyed()).status_code == 200
    )
    clock[0] += settings.idempotency_ttl_seconds + 1
    late = client.post("/refresh", json={"refresh_token": token}, headers=keyed())
    assert refusal(late) == (401, "refresh_token_reused")  # a new request: the token is used


def test_sign_out_and_the_registrars_changes_are_keyed_too(client, settings, registrar_token):
    bearer = {"Authorization": f"Bearer {registrar_token}"}
    patch = [client.patch("/accounts/9", json={"first_name": "Ann"}, headers=keyed("p", **bearer))
             for _ in range(2)]  # fmt: skip
    assert patch[0].status_code == patch[1].status_code == 200
    assert patch[1].content == patch[0].content and patch[1].headers[idempotency.REPLAYED_HEADER]
    assert refusal(
        client.patch("/accounts/9", json={"first_name": "Bo"}, headers=keyed("p", **bearer))
    ) == (422, "idempotency_key_reused")
    password = [
        client.put("/accounts/9/password", json={"password": "a-new-password-1"},
                   headers=keyed("pw", **bearer))
        for _ in range(2)
    ]  # fmt: skip
    assert [r.status_code for r in password] == [204, 204] and password[1].content == b""
    audit = client.get("/audit?user_id=9&action=account.password", headers=bearer).json()
    assert len(audit) == 1
    token = tokens_for(client, "lsmith")["refresh_token"]
    out = [client.post("/logout", json={"refresh_token": token}, headers=keyed("out"))
           for _ in range(2)]  # fmt: skip
    assert [r.status_code for r in out] == [204, 204]
    assert out[1].headers[idempotency.REPLAYED_HEADER] == "true"


def test_a_retry_while_the_first_still_runs_is_409_request_in_progress(client, monkeypatch):
    """Real concurrency: the first registration is held inside its password hash (outside the
    transaction) while the same request with the same key arrives on another thread. The second
    is told the first is running, does no hash of its own, and its retry afterwards gets the
    first's 201."""
    hashing, release = threading.Event(), threading.Event()
    real_hash = passwords.hash_password
    hashes: list[str] = []

    def slow_hash(password: str) -> str:
        hashes.append(password)
        hashing.set()
        assert release.wait(10)
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/register", json=new_user(), headers=keyed())
        assert hashing.wait(10)
        second = pool.submit(client.post, "/register", json=new_user(), headers=keyed()).result()
        release.set()
        first_reply = first.result()
    assert refusal(second) == (409, "request_in_progress")
    assert first_reply.status_code == 201
    assert len(hashes) == 1
    retried = client.post("/register", json=new_user(), headers=keyed())
    assert (retried.status_code, retried.content) == (201, first_reply.content)
    assert retried.headers[idempotency.REPLAYED_HEADER] == "true"


def test_a_replica_passes_the_key_on_and_the_primarys_answer_back(tmp_path, client, settings):
    with replica_of(client, tmp_path) as replica:
        replica.app.state.primary.client = marked(client)
        first = replica.post("/register", json=new_user(), headers=keyed())
        again = replica.post("/register", json=new_user(), headers=keyed())
    direct = client.post("/register", json=new_user(), headers=keyed())
    assert first.status_code == again.status_code == direct.status_code == 201
    assert first.content == again.content == direct.content
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert user_count(settings) == 39  # the 38 seed users and one new account


def test_a_sign_in_takes_a_key_and_signs_in_again_on_a_retry(client):
    """A sign-in changes nothing to make exactly once: the key is checked and accepted, and
    nothing holding tokens is kept for it."""
    body = {"username": "ajohnson", "password": DEMO_PASSWORD}
    first = client.post("/login", json=body, headers=keyed())
    again = client.post("/login", json=body, headers=keyed())
    assert first.status_code == again.status_code == 200
    assert first.json()["refresh_token"] != again.json()["refresh_token"]
    assert idempotency.REPLAYED_HEADER.lower() not in again.headers
    bad = client.post("/login", json=body, headers=keyed("\x7f"))
    assert refusal(bad) == (422, "validation_error")
    assert bad.json()["errors"][0]["field"] == idempotency.HEADER


@pytest.mark.parametrize("path", ["/register", "/refresh", "/logout"])
def test_a_malformed_key_is_422_naming_the_header_and_changes_nothing(client, settings, path):
    token = tokens_for(client, "ajohnson")["refresh_token"]
    body = new_user() if path == "/register" else {"refresh_token": token}
    reply = client.post(path, json=body, headers=keyed("x" * 256))
    assert refusal(reply) == (422, "validation_error")
    assert reply.json()["errors"][0] == {
        "field": idempotency.HEADER,
        "in": "header",
        "message": "must be 1 to 255 characters long",
    }
    assert records(settings) == [] and stored_user(settings, "newstudent") is None
    assert client.post("/refresh", json={"refresh_token": token}).status_code == 200


def test_the_openapi_schema_declares_the_key_on_every_write(client):
    schema = client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert (idempotency.HEADER in names) == (method != "get"), (method, path)
            if method != "get" and path != "/login":
                codes = operation["responses"]
                assert "request_in_progress" in codes["409"]["x-codes"]
                assert "idempotency_key_reused" in codes["422"]["x-codes"]
