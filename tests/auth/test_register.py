"""POST /register: who may create which accounts, and what is refused without writing anything."""

import pytest

from app.auth.settings import Settings
from tests.auth.helpers import (
    GOOD_PASSWORD,
    claims_for,
    login,
    new_user,
    register,
    sign,
    stored_user,
    tokens_for,
    user_count,
    verify_with_pyjwt,
)


def test_self_registration_creates_a_student_who_can_sign_in(client, settings):
    reply = register(client, username="newstudent", first_name="New", last_name="Student")

    assert reply.status_code == 201, reply.text
    user = reply.json()
    assert user == {
        "id": user["id"],
        "username": "newstudent",
        "first_name": "New",
        "last_name": "Student",
        "roles": ["student"],
        "email": "newstudent@example.edu",
    }
    assert user["id"] > 38  # after the seed users, whose ids the enrollment service shares
    tokens = tokens_for(client, "newstudent", GOOD_PASSWORD)
    claims = verify_with_pyjwt(client, tokens["access_token"])
    assert claims["sub"] == str(user["id"])
    assert claims["roles"] == ["student"]


def test_the_password_is_stored_only_as_an_argon2id_hash(client, settings):
    register(client, username="newstudent", password=GOOD_PASSWORD)

    stored = stored_user(settings, "newstudent")
    assert stored["password_hash"].startswith("$argon2id$")
    assert GOOD_PASSWORD not in stored["password_hash"]


def test_usernames_are_case_insensitive(client, settings):
    first = register(client, username="Ada.Lovelace-1")
    assert first.status_code == 201
    assert first.json()["username"] == "ada.lovelace-1"

    again = register(client, username="ADA.LOVELACE-1")
    assert again.status_code == 409
    assert login(client, "Ada.Lovelace-1", GOOD_PASSWORD).status_code == 200


def test_an_existing_username_is_409_and_the_account_is_unchanged(client, settings):
    before = stored_user(settings, "ajohnson")

    reply = register(client, username="ajohnson", first_name="Someone", last_name="Else")

    assert reply.status_code == 409
    assert reply.json()["code"] == "username_taken"
    assert "ajohnson" in reply.json()["detail"]
    assert stored_user(settings, "ajohnson") == before
    assert login(client, "ajohnson").status_code == 200  # the old password still works


@pytest.mark.parametrize(
    ("body_change", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "a" * 33}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "émile"}, "username"),
        ({"username": 12345}, "username"),
        ({"password": ""}, "password"),
        ({"password": "short-pw"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": 123456789012345}, "password"),
        ({"username": "samesame1234", "password": "SameSame1234"}, "password"),
        ({"first_name": ""}, "first_name"),
        ({"first_name": "   "}, "first_name"),
        ({"last_name": "x" * 65}, "last_name"),
        ({"last_name": "Bell\x07"}, "last_name"),
        ({"first_name": ["Ann"]}, "first_name"),
        ({"roles": []}, "roles"),
        ({"roles": "student"}, "roles"),
        ({"roles": ["admin"]}, "roles.0"),
        ({"roles": ["Student"]}, "roles.0"),
        ({"roles": ["student", "student"]}, "roles"),
        ({"roles": None}, "roles"),
        ({"is_admin": True}, "is_admin"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(client, settings, body_change, field):
    before = user_count(settings)

    reply = register(client, **body_change)

    assert reply.status_code == 422, reply.text
    assert field in {error["field"] for error in reply.json()["errors"]}
    assert user_count(settings) == before


@pytest.mark.parametrize("missing", ["username", "password", "first_name", "last_name"])
def test_a_missing_field_is_422(client, settings, missing):
    body = new_user()
    del body[missing]
    before = user_count(settings)

    reply = client.post("/register", json=body)

    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == missing
    assert user_count(settings) == before


@pytest.mark.parametrize("raw", ["not json", "[]", "null", '"newstudent"'])
def test_a_body_that_is_not_a_json_object_is_422(client, settings, raw):
    reply = client.post("/register", content=raw, headers={"Content-Type": "application/json"})

    assert reply.status_code == 422
    assert user_count(settings) == 38


@pytest.mark.parametrize("roles", [["instructor"], ["registrar"], ["student", "instructor"]])
def test_anonymous_callers_cannot_give_themselves_staff_roles(client, settings, roles):
    reply = register(client, roles=roles)

    assert reply.status_code == 403
    assert reply.json()["code"] == "registrar_required"
    assert "registrar" in reply.json()["detail"]
    assert stored_user(settings, "newstudent") is None


def test_a_registrar_can_create_an_instructor(client, settings, registrar_token):
    reply = register(client, token=registrar_token, username="newprof", roles=["instructor"])

    assert reply.status_code == 201, reply.text
    assert reply.json()["roles"] == ["instructor"]
    claims = verify_with_pyjwt(client, tokens_for(client, "newprof", GOOD_PASSWORD)["access_token"])
    assert claims["roles"] == ["instructor"]


def test_a_registrar_can_create_a_registrar_with_several_roles(client, registrar_token):
    reply = register(
        client, token=registrar_token, username="deputy", roles=["registrar", "instructor"]
    )

    assert reply.status_code == 201, reply.text
    assert reply.json()["roles"] == ["instructor", "registrar"]


@pytest.mark.parametrize("username", ["ajohnson", "kavery"])  # a student, an instructor
def test_other_roles_cannot_create_staff_accounts(client, settings, username):
    token = tokens_for(client, username)["access_token"]

    reply = register(client, token=token, username="sneaky", roles=["registrar"])

    assert reply.status_code == 403
    assert stored_user(settings, "sneaky") is None


def test_a_bad_token_is_401(client, settings):
    reply = register(client, token="not-a-token", username="sneaky", roles=["instructor"])

    assert reply.status_code == 401
    assert stored_user(settings, "sneaky") is None


def test_a_non_bearer_authorization_is_401(client, settings, registrar_token):
    reply = client.post(
        "/register",
        json={
            "username": "sneaky",
            "password": GOOD_PASSWORD,
            "first_name": "S",
            "last_name": "N",
            "roles": ["instructor"],
        },
        headers={"Authorization": f"Basic {registrar_token}"},
    )

    assert reply.status_code == 401
    assert stored_user(settings, "sneaky") is None


def test_a_registrars_refresh_token_does_not_authorise_registration(client, settings):
    refresh_token = tokens_for(client, "rhenderson")["refresh_token"]

    reply = register(client, token=refresh_token, username="sneaky", roles=["instructor"])

    assert reply.status_code == 401
    assert stored_user(settings, "sneaky") is None


def test_an_expired_registrar_token_is_401(client, settings: Settings):
    claims = claims_for(settings, ttl_seconds=1200, now=1_000_000_000)  # 2001

    reply = register(client, token=sign(settings, claims), username="sneaky", roles=["instructor"])

    assert reply.status_code == 401
    assert stored_user(settings, "sneaky") is None
