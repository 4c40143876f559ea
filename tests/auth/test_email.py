"""Every account has an email address (issue 27): `<username>@<AUTH_MAIL_DOMAIN>` unless one is
given at registration or by the registrar; shown to the person registering and to the registrar,
validated with a 422 naming the field, changed (and reset) with an audit entry."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

from app.auth.init_db import init_database
from app.auth.main import create_app
from tests.auth.helpers import GOOD_PASSWORD, login, make_settings, new_user, register


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_account_without_an_address_gets_the_default_one(client, registrar_token):
    reply = register(client, username="nomail")
    assert reply.status_code == 201, reply.text
    assert reply.json()["email"] == "nomail@example.edu"
    seeded = client.get("/accounts/9", headers=bearer(registrar_token)).json()
    assert seeded["email"] == f"{seeded['username']}@example.edu"


def test_the_default_domain_is_a_setting(tmp_path):
    with TestClient(create_app(make_settings(tmp_path, mail_domain="uni.test"))) as client:
        reply = register(client, username="elsewhere")
    assert reply.json()["email"] == "elsewhere@uni.test"


def test_self_registration_may_give_an_address(client, registrar_token):
    reply = register(client, username="withmail", email="  Sam.Stone+reg@Mail.Example.ORG ")
    assert reply.status_code == 201, reply.text
    assert reply.json()["email"] == "Sam.Stone+reg@mail.example.org"  # the domain is lowercased
    found = client.get("/accounts", params={"q": "withmail"}, headers=bearer(registrar_token))
    assert [account["email"] for account in found.json()] == ["Sam.Stone+reg@mail.example.org"]


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "two@@example.edu",
        "space in@example.edu",
        "line@example.edu\r\nBcc: everyone@example.edu",
        "dot.@example.edu",
        "user@nodot",
        "user@-bad.example.edu",
        "x" * 250 + "@example.edu",
        "",
        42,
    ],
)
def test_a_malformed_address_is_422_naming_the_field(client, email):
    reply = client.post("/register", json=new_user(username="badmail", email=email))
    assert reply.status_code == 422, reply.text
    assert [error["field"] for error in reply.json()["errors"]] == ["email"], reply.text


def test_the_registrar_changes_an_address_and_resets_it_to_the_default(client, registrar_token):
    user = register(client, username="mover").json()
    url = f"/accounts/{user['id']}"
    changed = client.patch(
        url, json={"email": "mover@new.example.com"}, headers=bearer(registrar_token)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "mover@new.example.com"
    reset = client.patch(url, json={"email": None}, headers=bearer(registrar_token))
    assert reset.json()["email"] == "mover@example.edu"
    bad = client.patch(url, json={"email": "nope"}, headers=bearer(registrar_token))
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"][0]["field"] == "email"
    assert "email address" in bad.json()["errors"][0]["message"]

    audit = client.get("/audit", params={"user_id": user["id"]}, headers=bearer(registrar_token))
    changes = [entry["details"] for entry in audit.json() if entry["action"] == "account.email"]
    assert changes == [
        {"before": "mover@new.example.com", "after": None},
        {"before": None, "after": "mover@new.example.com"},
    ]


def test_a_student_reads_no_one_s_address(client):
    register(client, username="curious")
    token = login(client, "curious", GOOD_PASSWORD).json()["access_token"]
    assert client.get("/accounts", headers=bearer(token)).status_code == 403
    assert client.get("/accounts/9", headers=bearer(token)).status_code == 403


def test_a_version_4_database_keeps_its_audit_and_gains_the_email_column(tmp_path):
    path = tmp_path / "auth.db"
    init_database(path)
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        INSERT INTO account_audit (actor_id, action, user_id) VALUES (1, 'account.roles', 9);
        ALTER TABLE users DROP COLUMN email;
        PRAGMA user_version = 4;
        """
    )
    conn.close()
    init_database(path)
    conn = sqlite3.connect(path)
    audit = conn.execute("SELECT actor_id, action, user_id FROM account_audit").fetchall()
    emails = conn.execute("SELECT count(*) FROM users WHERE email IS NULL").fetchone()[0]
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert audit == [(1, "account.roles", 9)]
    assert emails > 30
    assert {"account_audit_by_actor", "account_audit_by_user"} <= indexes
