"""PUT /internal/users/{id}: the auth service announces each account it creates or changes, so
enrollment knows every account, with its name, before the user's first request (issue 13). For
the installation's services only (the gateway secret, no user identity); no gateway routes it."""

import pytest

from tests.enrollment.helpers import REGISTRAR

URL = "/internal/users/5001"
ACCOUNT = {"username": "nnew", "first_name": "Nia", "last_name": "New", "roles": ["student"]}


def announce(api, body: dict, headers: dict | None = None, url: str = URL):
    headers = {"X-Gateway-Secret": api.secret} if headers is None else headers
    return api.client.put(url, json=body, headers=headers)


def test_an_announced_account_is_known_at_once_with_its_name(api):
    first = announce(api, ACCOUNT)
    again = announce(api, ACCOUNT)  # the same account twice: no change, no error
    renamed = announce(api, ACCOUNT | {"last_name": "Newer", "roles": ["instructor", "student"]})
    record = api.as_(REGISTRAR).get("/users/5001")
    listed = api.as_(REGISTRAR).get("/users", params={"after": 5000}).json()

    assert (first.status_code, again.status_code, renamed.status_code) == (204, 204, 204)
    assert record.json() == {
        "id": 5001,
        "username": "nnew",
        "first_name": "Nia",
        "last_name": "Newer",
        "roles": ["instructor", "student"],
        "credit_limit": None,
        "class_level": None,
        "email": None,  # no auth service in these tests to ask
    }
    assert [user["id"] for user in listed] == [5001]


def test_an_announced_instructor_is_assignable(api):
    announce(api, ACCOUNT | {"roles": ["instructor"]})
    section = api.as_(REGISTRAR).post(
        "/sections", json={"course_id": 4, "section_number": 70, "instructor_id": 5001,
                           "capacity": 5},
    )  # fmt: skip
    assert section.status_code == 201, section.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Gateway-Secret": "not-the-secret-but-long-enough-to-compare"},
        # A user's identity, without the secret, is nobody.
        {"X-User-Id": "1", "X-User-Name": "rhenderson", "X-User-Roles": "registrar"},
    ],
)
def test_only_a_service_with_the_secret_may_announce(api, headers):
    reply = announce(api, ACCOUNT, headers=headers)
    assert (reply.status_code, reply.json()["code"]) == (401, "no_gateway")
    assert api.as_(REGISTRAR).get("/users/5001").status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({k: v for k, v in ACCOUNT.items() if k != "username"}, "username"),
        (ACCOUNT | {"roles": []}, "roles"),
        (ACCOUNT | {"roles": ["dean"]}, "roles"),
        (ACCOUNT | {"first_name": "x" * 65}, "first_name"),
        (ACCOUNT | {"first_name": "a\x00b"}, "first_name"),
        (ACCOUNT | {"id": 7}, "id"),
    ],
)
def test_a_bad_announcement_is_a_422_naming_the_field_and_records_nothing(api, body, field):
    reply = announce(api, body)
    assert reply.status_code == 422 and field in reply.text
    assert api.as_(REGISTRAR).get("/users/5001").status_code == 404


@pytest.mark.parametrize("url", ["/internal/users/0", "/internal/users/x", "/internal/users/-1"])
def test_a_bad_id_is_a_422(api, url):
    assert announce(api, ACCOUNT, url=url).status_code == 422


def test_the_route_is_out_of_the_api_schema(api):
    assert "/internal/users/{user_id}" not in api.client.get("/openapi.json").json()["paths"]
