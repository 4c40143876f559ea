"""/login: seed and new users sign in; failures look alike; hashing runs off the event loop."""

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.auth import passwords
from app.auth.main import create_app
from tests.auth.helpers import (
    DEMO_PASSWORD,
    GOOD_PASSWORD,
    login,
    make_settings,
    register,
    stored_user,
    tokens_for,
    verify_with_pyjwt,
)
from tests.bodies import error_of

PEOPLE = json.loads((Path(__file__).parents[2] / "share" / "seed" / "people.json").read_text())


@pytest.mark.parametrize(
    ("username", "user_id", "role"),
    [
        ("rhenderson", 1, "registrar"),
        ("kavery", 3, "instructor"),
        ("ajohnson", 9, "student"),
    ],
)
def test_seed_users_sign_in_with_the_demo_password(client, username, user_id, role):
    reply = login(client, username)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 20 * 60
    claims = verify_with_pyjwt(client, body["access_token"])
    assert claims["sub"] == str(user_id)
    assert claims["preferred_username"] == username
    assert claims["roles"] == [role]
    person = next(p for p in PEOPLE if p["username"] == username)
    assert (claims["given_name"], claims["family_name"]) == (
        person["first_name"],
        person["last_name"],
    )


def test_every_seed_person_is_in_the_database_with_the_same_id_and_roles(settings):
    for person in PEOPLE:
        stored = stored_user(settings, person["username"])
        assert stored is not None, person["username"]
        assert (stored["id"], stored["first_name"], stored["last_name"], stored["roles"]) == (
            person["id"],
            person["first_name"],
            person["last_name"],
            sorted(person["roles"]),
        )


def test_every_seed_users_stored_hash_accepts_the_demo_password(tmp_path):
    settings = make_settings(tmp_path, shipped_seed_hashes=True)
    hashes = [stored_user(settings, person["username"])["password_hash"] for person in PEOPLE]
    assert all(h.startswith("pbkdf2_sha256$600000$") for h in hashes)

    with ThreadPoolExecutor() as pool:  # PBKDF2 releases the GIL: this uses every core
        results = list(pool.map(lambda h: passwords.verify_password(DEMO_PASSWORD, h), hashes))

    assert all(results)


def test_login_accepts_the_username_in_any_case(client):
    assert login(client, "RHenderson").status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_401(client):
    wrong_password = login(client, "rhenderson", "not-the-password")
    unknown_user = login(client, "nobody-here", "not-the-password")

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert error_of(wrong_password) == error_of(unknown_user)
    assert wrong_password.json()["detail"] == "invalid username or password"


def test_an_unknown_user_still_costs_a_password_verification(client, monkeypatch):
    checked = []
    real_verify = passwords.verify_password

    def recording_verify(password: str, stored_hash: str) -> bool:
        checked.append(stored_hash)
        return real_verify(password, stored_hash)

    monkeypatch.setattr(passwords, "verify_password", recording_verify)

    assert login(client, "nobody-here", "some-password").status_code == 401
    assert checked == [passwords.DUMMY_HASH]


def test_the_dummy_hash_costs_what_a_new_accounts_hash_costs():
    # An unknown user is checked against DUMMY_HASH: its scheme and cost parameters (argon2id,
    # m, t, p) must be those of a new account's hash, or the two 401s would differ in time.
    # How long each takes is measured by bench/login_timing.py, not asserted here.
    scheme = passwords.DUMMY_HASH.rsplit("$", 2)[0]

    assert scheme == passwords.hash_password("any-new-password-here").rsplit("$", 2)[0]
    assert scheme.startswith("$argon2id$")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "rhenderson"},
        {"password": DEMO_PASSWORD},
        {"username": "", "password": DEMO_PASSWORD},
        {"username": "rhenderson", "password": ""},
        {"username": 1, "password": DEMO_PASSWORD},
        {"username": "rhenderson", "password": [DEMO_PASSWORD]},
        {"username": "rhenderson", "password": DEMO_PASSWORD, "remember_me": True},
    ],
)
def test_malformed_login_is_422(client, body):
    reply = client.post("/login", json=body)

    assert reply.status_code == 422
    assert reply.json()["errors"]


def test_a_slow_password_check_does_not_stall_other_logins(settings, monkeypatch):
    release = threading.Event()
    real_verify = passwords.verify_password

    def verify_stuck_for_rhenderson(password: str, stored_hash: str) -> bool:
        if password == "rhenderson-is-slow":
            release.wait(timeout=10)
        return real_verify(password, stored_hash)

    monkeypatch.setattr(passwords, "verify_password", verify_stuck_for_rhenderson)
    app = create_app(settings)

    async def scenario() -> tuple[int, bool, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
            slow = {"username": "rhenderson", "password": "rhenderson-is-slow"}
            stuck = asyncio.create_task(http.post("/login", json=slow))
            await asyncio.sleep(0.2)  # the stuck login is now inside its password check
            other = await asyncio.wait_for(
                http.post("/login", json={"username": "ajohnson", "password": DEMO_PASSWORD}),
                timeout=8,
            )
            stuck_still_waiting = not stuck.done()
            release.set()
            return other.status_code, stuck_still_waiting, (await stuck).status_code

    assert asyncio.run(scenario()) == (200, True, 401)


def test_new_users_sign_in_with_their_own_password_only(client):
    register(client, username="newstudent", password=GOOD_PASSWORD)

    assert login(client, "newstudent", GOOD_PASSWORD).status_code == 200
    assert login(client, "newstudent", GOOD_PASSWORD.upper()).status_code == 401
    assert login(client, "newstudent", DEMO_PASSWORD).status_code == 401


def test_tokens_carry_the_names_the_account_was_registered_with(client):
    created = register(client, username="zng", first_name="Zoë", last_name="Ng")
    assert created.status_code == 201, created.text

    body = tokens_for(client, "zng", GOOD_PASSWORD)
    refreshed = client.post("/refresh", json={"refresh_token": body["refresh_token"]})

    assert refreshed.status_code == 200, refreshed.text
    for token in (body["access_token"], refreshed.json()["access_token"]):
        claims = verify_with_pyjwt(client, token)
        assert (claims["given_name"], claims["family_name"]) == ("Zoë", "Ng")
