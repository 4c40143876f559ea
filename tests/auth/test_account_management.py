"""The registrar's account management (SPEC §3, issue 13): find accounts a page at a time, change
roles and names, disable and re-enable, set a new password; what each change does to sign-in and
refresh. Through the app itself; tests/e2e/test_accounts.py does the same through the gateways."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

from app.auth.init_db import init_database
from app.auth.settings import SCHEMA_VERSION
from harness.seed import DEMO_PASSWORD
from tests.auth.helpers import (
    GOOD_PASSWORD,
    claims_for,
    login,
    register,
    replica_of,
    sign,
    tokens_for,
    verify_with_pyjwt,
)

NEW_PASSWORD = "a-brand-new-passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_registrar(registrar_token: str) -> dict[str, str]:
    return bearer(registrar_token)


@pytest.fixture
def student(client: TestClient) -> dict:
    reply = register(client, username="sstone", first_name="Sam", last_name="Stone")
    assert reply.status_code == 201, reply.text
    return reply.json()


def refresh(client: TestClient, refresh_token: str):
    return client.post("/refresh", json={"refresh_token": refresh_token})


# finding accounts


def test_the_registrar_pages_through_every_account_without_gaps_or_repeats(client, as_registrar):
    for n in range(7):
        register(client, username=f"pager{n}", first_name="Page", last_name=f"Row{n}")
    everyone = client.get("/accounts", params={"limit": 1000}, headers=as_registrar).json()

    seen, after = [], None
    while True:
        params = {"limit": 3} | ({"after": after} if after else {})
        page = client.get("/accounts", params=params, headers=as_registrar)
        assert page.status_code == 200, page.text
        rows = page.json()
        seen += [row["id"] for row in rows]
        if len(rows) < 3:
            break
        after = rows[-1]["id"]

    assert seen == [row["id"] for row in everyone] == sorted(set(seen))
    assert len(seen) >= 7 + 5  # the new accounts and the seed's
    first = everyone[0]
    assert set(first) == {"id", "username", "first_name", "last_name", "roles", "disabled", "email"}
    assert "password" not in page.text and "hash" not in page.text


def test_search_by_name_role_and_state(client, as_registrar, student):
    register(client, username="ochen", first_name="Olive", last_name="Chen")
    client.patch(f"/accounts/{student['id']}", json={"disabled": True}, headers=as_registrar)

    def usernames(**params) -> list[str]:
        reply = client.get("/accounts", params=params, headers=as_registrar)
        assert reply.status_code == 200, reply.text
        return [row["username"] for row in reply.json()]

    assert usernames(q="STONE") == ["sstone"]  # last name, any case
    assert usernames(q="olive") == ["ochen"]  # first name
    assert usernames(q="och") == ["ochen"]  # part of the username
    assert usernames(q="%") == []  # a wildcard character matches only itself
    assert usernames(role="registrar") == ["rhenderson", "mpatel"]
    assert usernames(disabled="true") == ["sstone"]
    assert "sstone" not in usernames(disabled="false", role="student")


def test_search_by_full_name_and_email_address_a_page_at_a_time(client, as_registrar, student):
    register(client, username="ochen", first_name="Olive", last_name="Chen", email="Olive@Mail.Org")
    register(client, username="obrien", first_name="Olive", last_name="Brien")
    register(client, username="ochoa", first_name="Oscar", last_name="Ochoa")

    def usernames(**params) -> list[str]:
        reply = client.get("/accounts", params=params, headers=as_registrar)
        assert reply.status_code == 200, reply.text
        return [row["username"] for row in reply.json()]

    assert usernames(q="olive chen") == ["ochen"]  # first and last name together
    assert usernames(q="olive@mail.ORG") == ["ochen"]  # the address given, any case
    assert usernames(q="@mail.org") == ["ochen"]
    # The default address, <username>@<mail domain>, is found as it is shown.
    assert usernames(q="sstone@example.edu") == ["sstone"]
    assert "ochen" not in usernames(q="ochen@example.edu")  # an address of its own replaces it
    # Paged like every list: the same matches, a page at a time, in id order.
    everyone = usernames(q="o", limit=1000)
    first = client.get("/accounts", params={"q": "o", "limit": 2}, headers=as_registrar).json()
    rest = usernames(q="o", limit=1000, after=first[-1]["id"])
    assert [row["username"] for row in first] + rest == everyone
    assert {"ochen", "obrien", "ochoa", "sstone"} <= set(everyone)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": 0}, "after"),
        ({"after": -5}, "after"),
        ({"after": "x"}, "after"),
        ({"role": "dean"}, "role"),
        ({"disabled": "maybe"}, "disabled"),
        ({"q": ""}, "q"),
        ({"q": "x" * 255}, "q"),
    ],
)
def test_bad_paging_and_search_input_is_a_422_naming_the_field(client, as_registrar, params, field):
    reply = client.get("/accounts", params=params, headers=as_registrar)
    assert reply.status_code == 422
    assert field in reply.text


def test_one_account_and_an_unknown_one(client, as_registrar, student):
    found = client.get(f"/accounts/{student['id']}", headers=as_registrar)
    missing = client.get("/accounts/999999", headers=as_registrar)
    assert found.json() == student | {"disabled": False}
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert "999999" in missing.json()["detail"]


# who may


def test_only_a_registrar_may_manage_accounts(client, student, settings):
    instructor = bearer(tokens_for(client, "kavery")["access_token"])
    own = bearer(tokens_for(client, "sstone", GOOD_PASSWORD)["access_token"])
    refresh_token = bearer(tokens_for(client, "rhenderson")["refresh_token"])
    expired = bearer(sign(settings, claims_for(settings, ttl_seconds=-60)))
    url = f"/accounts/{student['id']}"
    attempts = {
        "list": lambda h: client.get("/accounts", headers=h),
        "get": lambda h: client.get(url, headers=h),
        "patch": lambda h: client.patch(url, json={"roles": ["registrar"]}, headers=h),
        "password": lambda h: client.put(
            url + "/password", json={"password": NEW_PASSWORD}, headers=h
        ),
    }

    for name, attempt in attempts.items():
        for headers, status in [
            ({}, 401),
            (expired, 401),
            (refresh_token, 401),  # a refresh token is no access token
            ({"Authorization": "Basic abc"}, 401),
            (instructor, 403),
            (own, 403),  # not even on their own account
        ]:
            reply = attempt(headers)
            assert reply.status_code == status, (name, headers, reply.text)
    assert login(client, "sstone", GOOD_PASSWORD).status_code == 200  # nothing changed
    assert verify_with_pyjwt(client, tokens_for(client, "sstone", GOOD_PASSWORD)["access_token"])[
        "roles"
    ] == ["student"]


def test_self_registration_still_yields_a_student_only(client):
    reply = register(client, username="sneaky", roles=["registrar"])
    assert (reply.status_code, reply.json()["code"]) == (403, "registrar_required")


# changing an account


def test_a_role_change_ends_the_sessions_and_the_next_sign_in_carries_the_new_roles(
    client, as_registrar, student
):
    session = tokens_for(client, "sstone", GOOD_PASSWORD)

    changed = client.patch(
        f"/accounts/{student['id']}",
        json={"roles": ["student", "instructor"]},
        headers=as_registrar,
    )
    renewed = refresh(client, session["refresh_token"])

    assert changed.status_code == 200, changed.text
    assert changed.json()["roles"] == ["student", "instructor"]
    # Tokens carry roles: those issued before the change are not renewed with either set.
    assert renewed.status_code == 401
    assert renewed.json()["code"] == "session_ended"
    fresh = tokens_for(client, "sstone", GOOD_PASSWORD)
    assert verify_with_pyjwt(client, fresh["access_token"])["roles"] == ["student", "instructor"]


def test_names_can_be_corrected_and_reach_the_tokens(client, as_registrar, student):
    changed = client.patch(
        f"/accounts/{student['id']}", json={"last_name": "Stone-Ng"}, headers=as_registrar
    )
    claims = verify_with_pyjwt(client, tokens_for(client, "sstone", GOOD_PASSWORD)["access_token"])
    assert (changed.json()["first_name"], changed.json()["last_name"]) == ("Sam", "Stone-Ng")
    assert (claims["given_name"], claims["family_name"]) == ("Sam", "Stone-Ng")


def test_a_disabled_account_signs_in_nowhere_and_its_refresh_fails(client, as_registrar, student):
    session = tokens_for(client, "sstone", GOOD_PASSWORD)

    disabled = client.patch(
        f"/accounts/{student['id']}", json={"disabled": True}, headers=as_registrar
    )
    signing_in = login(client, "sstone", GOOD_PASSWORD)
    wrong_password = login(client, "sstone", "not-the-password-at-all")
    refreshing = refresh(client, session["refresh_token"])

    assert disabled.json()["disabled"] is True
    assert (signing_in.status_code, signing_in.json()["code"]) == (403, "account_disabled")
    assert wrong_password.status_code == 401  # the state is told only to the password's holder
    assert (refreshing.status_code, refreshing.json()["code"]) == (401, "account_disabled")


def test_a_re_enabled_account_signs_in_again_but_old_sessions_stay_ended(
    client, as_registrar, student
):
    old_session = tokens_for(client, "sstone", GOOD_PASSWORD)
    url = f"/accounts/{student['id']}"
    client.patch(url, json={"disabled": True}, headers=as_registrar)

    enabled = client.patch(url, json={"disabled": False}, headers=as_registrar)
    new_session = tokens_for(client, "sstone", GOOD_PASSWORD)

    assert enabled.json()["disabled"] is False
    assert refresh(client, new_session["refresh_token"]).status_code == 200
    old = refresh(client, old_session["refresh_token"])
    assert (old.status_code, old.json()["code"]) == (401, "session_ended")


def test_a_new_password_replaces_the_old_one_and_ends_old_sessions(client, as_registrar, student):
    old_session = tokens_for(client, "sstone", GOOD_PASSWORD)

    reply = client.put(
        f"/accounts/{student['id']}/password", json={"password": NEW_PASSWORD}, headers=as_registrar
    )

    assert (reply.status_code, reply.content) == (204, b"")
    assert login(client, "sstone", GOOD_PASSWORD).status_code == 401
    new_session = tokens_for(client, "sstone", NEW_PASSWORD)
    assert refresh(client, new_session["refresh_token"]).status_code == 200
    old = refresh(client, old_session["refresh_token"])
    assert (old.status_code, old.json()["code"]) == (401, "session_ended")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": 123456789012}, "password"),
        ({}, "password"),
        ({"password": NEW_PASSWORD, "extra": 1}, "extra"),
    ],
)
def test_a_bad_new_password_is_a_422_and_the_old_one_still_works(
    client, as_registrar, student, body, field
):
    reply = client.put(f"/accounts/{student['id']}/password", json=body, headers=as_registrar)
    assert reply.status_code == 422 and field in reply.text
    assert login(client, "sstone", GOOD_PASSWORD).status_code == 200


def test_the_username_is_no_password(client, as_registrar):
    created = register(client, username="longusername1", first_name="L", last_name="U").json()
    reply = client.put(
        f"/accounts/{created['id']}/password",
        json={"password": "LongUserName1"},
        headers=as_registrar,
    )
    assert (reply.status_code, reply.json()["code"]) == (422, "weak_password")


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "nothing to change"),
        ({"roles": []}, "roles"),
        ({"roles": ["dean"]}, "roles"),
        ({"roles": ["student", "student"]}, "roles"),
        ({"roles": None}, "roles"),
        ({"disabled": "yes"}, "disabled"),
        ({"disabled": None}, "disabled"),
        ({"first_name": ""}, "first_name"),
        ({"last_name": "x" * 65}, "last_name"),
        ({"username": "renamed"}, "username"),
        ({"password": NEW_PASSWORD}, "password"),
    ],
)
def test_a_bad_change_is_a_422_naming_the_field_and_changes_nothing(
    client, as_registrar, student, body, field
):
    url = f"/accounts/{student['id']}"
    reply = client.patch(url, json=body, headers=as_registrar)
    assert reply.status_code == 422 and field in reply.text
    assert client.get(url, headers=as_registrar).json() == student | {"disabled": False}


def test_changing_an_unknown_account_is_a_404(client, as_registrar):
    patched = client.patch("/accounts/999999", json={"disabled": True}, headers=as_registrar)
    password = client.put(
        "/accounts/999999/password", json={"password": NEW_PASSWORD}, headers=as_registrar
    )
    assert patched.status_code == password.status_code == 404


def test_a_registrar_cannot_lock_themselves_out(client, as_registrar):
    for body in ({"disabled": True}, {"roles": ["instructor"]}):
        reply = client.patch("/accounts/1", json=body, headers=as_registrar)
        assert (reply.status_code, reply.json()["code"]) == (409, "own_account")
    assert client.get("/accounts/1", headers=as_registrar).json()["roles"] == ["registrar"]
    assert login(client, "rhenderson", DEMO_PASSWORD).status_code == 200
    # Another registrar can, and the first may still rename themselves.
    other = bearer(tokens_for(client, "mpatel")["access_token"])
    assert client.patch("/accounts/1", json={"first_name": "Rita"}, headers=as_registrar).is_success
    assert client.patch("/accounts/1", json={"disabled": True}, headers=other).json()["disabled"]


# an older database


def test_a_database_of_the_previous_schema_is_migrated_with_its_accounts(tmp_path):
    path = tmp_path / "auth.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT 'then');
        CREATE TABLE user_roles (user_id INTEGER NOT NULL, role TEXT NOT NULL,
            PRIMARY KEY (user_id, role)) WITHOUT ROWID;
        INSERT INTO users (id, username, password_hash, first_name, last_name)
            VALUES (77, 'olduser', 'pbkdf2_sha256$1$x$y', 'Old', 'User');
        INSERT INTO user_roles VALUES (77, 'student');
        PRAGMA application_id = 1096111176;
        PRAGMA user_version = 1;
        """
    )
    conn.close()

    init_database(path)
    init_database(path)  # again: nothing more to do

    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT username, disabled, token_generation, email FROM users WHERE id = 77"
    ).fetchone()
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(  # account_audit was made again, with the new action among its CHECK's
        "INSERT INTO account_audit (actor_id, action, user_id) VALUES (1, 'account.email', 77)"
    )
    conn.close()
    assert row == ("olduser", 0, 0, None)
    assert version == SCHEMA_VERSION == 5


# on a replica


def test_a_change_sent_to_a_replica_is_made_by_the_primary(client, as_registrar, student, tmp_path):
    with replica_of(client, tmp_path) as replica:
        replica.app.state.primary.client = client
        url = f"/accounts/{student['id']}"
        disabled = replica.patch(url, json={"disabled": True}, headers=as_registrar)
        password = replica.put(
            url + "/password", json={"password": NEW_PASSWORD}, headers=as_registrar
        )
        own = replica.patch("/accounts/1", json={"disabled": True}, headers=as_registrar)
        missing = replica.patch("/accounts/999999", json={"disabled": True}, headers=as_registrar)

    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert password.status_code == 204
    assert client.get(url, headers=as_registrar).json()["disabled"] is True
    assert (own.status_code, own.json()["code"]) == (409, "own_account")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    client.patch(url, json={"disabled": False}, headers=as_registrar)
    assert login(client, "sstone", NEW_PASSWORD).status_code == 200


def test_with_the_primary_out_of_reach_a_change_is_a_503_and_nothing_changes(
    client, as_registrar, student, tmp_path
):
    closed_port = "http://127.0.0.1:9"
    with replica_of(client, tmp_path, primary_url=closed_port) as replica:
        reply = replica.patch(
            f"/accounts/{student['id']}", json={"disabled": True}, headers=as_registrar
        )
    assert (reply.status_code, reply.json()["code"]) == (503, "primary_unavailable")
    assert login(client, "sstone", GOOD_PASSWORD).status_code == 200


def test_a_replica_behind_a_password_change_renews_the_new_session_through_the_primary(
    client, as_registrar, student, tmp_path
):
    with replica_of(client, tmp_path) as replica:  # copied before the change: it lags
        replica.app.state.primary.client = client
        client.put(
            f"/accounts/{student['id']}/password",
            json={"password": NEW_PASSWORD},
            headers=as_registrar,
        )
        session = tokens_for(client, "sstone", NEW_PASSWORD)
        renewed = replica.post("/refresh", json={"refresh_token": session["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
