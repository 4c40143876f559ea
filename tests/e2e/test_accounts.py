"""Accounts across the two services, through both real gateways (issue 13): an account made at
the auth service is known to the enrollment service on the very next request, with its name,
without that user ever having called it; the registrar's account changes reach every service
within one access-token lifetime; long lists page without gaps or repeats.

Access tokens live ACCESS_TTL seconds in this module's cluster (20 minutes by default), so that
the bound on a disabled account's access can be waited out."""

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import http
from harness.auth_cluster import SHORT_ACCESS_TTL, SHORT_TOKENS_ENV
from harness.cluster import Cluster
from harness.seed import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery"
ACCESS_TTL = SHORT_ACCESS_TTL


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return dict(SHORT_TOKENS_ENV)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_student(cluster: Cluster, prefix: str, first_name: str, last_name: str) -> dict:
    """A student who signs themselves up through the auth gateway: their account."""
    reply = http.post(
        cluster.auth_gateway.url + "/auth_api/register",
        json={"username": f"{prefix}-{secrets.token_hex(3)}", "password": PASSWORD,
              "first_name": first_name, "last_name": last_name},
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_a_new_instructor_is_assignable_on_the_next_request_and_sees_the_roster(cluster: Cluster):
    auth = cluster.auth_gateway.url + "/auth_api"
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = cluster.login("rhenderson", DEMO_PASSWORD)["access_token"]
    username = f"instr-{secrets.token_hex(3)}"

    created = http.post(
        auth + "/register",
        json={"username": username, "password": PASSWORD, "first_name": "Ingrid",
              "last_name": "Okafor", "roles": ["instructor"]},
        headers=bearer(registrar),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    instructor_id = created.json()["id"]
    section = http.post(
        api + "/sections",
        json={"course_id": 4, "section_number": 60, "instructor_id": instructor_id, "capacity": 3},
        headers=bearer(registrar),
    )
    record = http.get(api + f"/users/{instructor_id}", headers=bearer(registrar))
    token = http.post(auth + "/login", json={"username": username, "password": PASSWORD}).json()
    roster = http.get(
        api + f"/sections/{section.json()['id']}/enrollments",
        headers=bearer(token["access_token"]),
    )

    assert section.status_code == 201, section.text
    assert section.json()["instructor_id"] == instructor_id
    assert record.status_code == 200, record.text
    assert (record.json()["first_name"], record.json()["last_name"]) == ("Ingrid", "Okafor")
    assert record.json()["roles"] == ["instructor"]
    assert (roster.status_code, roster.json()) == (200, [])


def test_an_id_no_service_knows_is_still_a_404_naming_it(cluster: Cluster):
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])

    assigned = http.patch(api + "/sections/1", json={"instructor_id": 987654}, headers=registrar)
    looked_up = http.get(api + "/users/987654", headers=registrar)

    assert assigned.status_code == 404 and "987654" in assigned.json()["detail"]
    assert looked_up.status_code == 404 and "987654" in looked_up.json()["detail"]


def test_a_new_student_cannot_be_assigned_to_teach(cluster: Cluster):
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])
    student = http.post(
        cluster.auth_gateway.url + "/auth_api/register",
        json={"username": f"stu-{secrets.token_hex(3)}", "password": PASSWORD,
              "first_name": "Sam", "last_name": "Lee"},
    ).json()  # fmt: skip

    assigned = http.patch(api + "/sections/1", json={"instructor_id": student["id"]},
                           headers=registrar)  # fmt: skip

    assert (assigned.status_code, assigned.json()["code"]) == (409, "not_an_instructor")


def test_a_disabled_student_is_refused_everywhere_within_one_access_token_lifetime(
    cluster: Cluster,
):
    auth = cluster.auth_gateway.url + "/auth_api"
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])
    student = new_student(cluster, "dis", "Dee", "Abled")
    username = student["username"]
    session = cluster.login(username, PASSWORD)
    enrollments = api + f"/users/{student['id']}/enrollments"
    before = http.post(enrollments, json={"section_id": 1}, headers=bearer(session["access_token"]))

    disabled = http.patch(
        auth + f"/accounts/{student['id']}", json={"disabled": True}, headers=registrar
    )
    disabled_at = time.monotonic()
    refreshed = http.post(auth + "/refresh", json={"refresh_token": session["refresh_token"]})
    signed_in = http.post(auth + "/login", json={"username": username, "password": PASSWORD})
    # The access token already issued keeps working until it expires: that is the stated bound.
    time.sleep(max(0.0, ACCESS_TTL + 1 - (time.monotonic() - disabled_at)))
    after = http.delete(enrollments + "/1", headers=bearer(session["access_token"]))
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])  # expired too
    still_enrolled = http.get(enrollments, headers=registrar)

    assert before.status_code == 201, before.text
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (refreshed.status_code, refreshed.json()["code"]) == (401, "account_disabled")
    assert (signed_in.status_code, signed_in.json()["code"]) == (403, "account_disabled")
    assert after.status_code == 401  # the gateway: the token has expired
    assert [row["section_id"] for row in still_enrolled.json()] == [1]


def test_only_the_registrar_reaches_the_accounts_through_the_gateway(cluster: Cluster):
    accounts = cluster.auth_gateway.url + "/auth_api/accounts"
    instructor = bearer(cluster.login("kavery", DEMO_PASSWORD)["access_token"])
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])

    assert http.get(accounts).status_code == 401
    assert http.get(accounts, headers=bearer("not.a.token")).status_code == 401
    assert http.get(accounts, headers=instructor).status_code == 403
    assert (
        http.patch(accounts + "/3", json={"roles": ["registrar"]}, headers=instructor).status_code
        == 403
    )
    found = http.get(accounts, params={"q": "avery"}, headers=registrar)
    assert found.status_code == 200
    assert [(a["id"], a["roles"]) for a in found.json()] == [(3, ["instructor"])]


def test_a_roster_of_500_pages_without_gaps_or_repeats_and_bad_paging_is_a_422(cluster: Cluster):
    api = cluster.enroll_gateway.url + "/enroll_api"
    # Signed as the auth service signs, with a lifetime longer than this module's ACCESS_TTL.
    registrar = bearer(cluster.token(1, "rhenderson", "registrar"))
    section = http.post(
        api + "/sections",
        json={"course_id": 4, "section_number": 61, "instructor_id": 3, "capacity": 500},
        headers=registrar,
    ).json()
    first_id = 700_000

    def enroll(n: int) -> int:
        user_id = first_id + n
        token = cluster.token(user_id, f"walker{n}", "student")
        reply = http.post(
            api + f"/users/{user_id}/enrollments",
            json={"section_id": section["id"]},
            headers=bearer(token),
            timeout=30,
        )
        return reply.status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(enroll, range(500)))
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 37} | ({"after": after} if after else {})
        page = http.get(api + f"/sections/{section['id']}/enrollments", params=params,
                         headers=registrar)  # fmt: skip
        assert page.status_code == 200, page.text
        rows = page.json()
        seen += [row["user_id"] for row in rows]
        if len(rows) < 37:
            break
        after = rows[-1]["id"]
    bad = {
        "limit": [0, 1001, "many"],
        "after": [0, -1, "last"],
    }

    assert statuses == [201] * 500
    assert sorted(seen) == list(range(first_id, first_id + 500))
    assert len(seen) == len(set(seen)) == 500
    for field, values in bad.items():
        for value in values:
            reply = http.get(api + f"/sections/{section['id']}/enrollments",
                              params={field: value}, headers=registrar)  # fmt: skip
            assert reply.status_code == 422, (field, value, reply.text)
            assert field in reply.text


def test_a_student_made_instructor_is_assignable_on_the_next_request_with_the_new_name(
    cluster: Cluster,
):
    auth = cluster.auth_gateway.url + "/auth_api"
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])
    student = new_student(cluster, "promo", "Pat", "Lee")
    username = student["username"]
    session = cluster.login(username, PASSWORD)
    # The student has used the enrollment service, so it has their record (as a student).
    assert http.get(
        api + f"/users/{student['id']}/sections", headers=bearer(session["access_token"])
    ).is_success
    refused = http.post(
        api + "/sections",
        json={"course_id": 4, "section_number": 62, "instructor_id": student["id"], "capacity": 3},
        headers=registrar,
    )

    promoted = http.patch(
        auth + f"/accounts/{student['id']}",
        json={"roles": ["instructor"], "last_name": "Lee-Park"},
        headers=registrar,
    )
    assigned = http.post(
        api + "/sections",
        json={"course_id": 4, "section_number": 62, "instructor_id": student["id"], "capacity": 3},
        headers=registrar,
    )
    record = http.get(api + f"/users/{student['id']}", headers=registrar)

    assert (refused.status_code, refused.json()["code"]) == (409, "not_an_instructor")
    assert promoted.status_code == 200, promoted.text
    assert assigned.status_code == 201, assigned.text
    assert (record.json()["last_name"], record.json()["roles"]) == ("Lee-Park", ["instructor"])


def test_enrollment_knows_a_new_account_with_its_name_before_any_request_of_its_own(
    cluster: Cluster,
):
    """The auth primary announces the account; nobody has named it at the enrollment service,
    and its user has never called it: the registrar's plain list already has it, and a
    correction of the name there too."""
    auth = cluster.auth_gateway.url + "/auth_api"
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])
    created = new_student(cluster, "early", "Erin", "Early")
    after = {"after": created["id"] - 1, "limit": 1}

    listed = http.get(api + "/users", params=after, headers=registrar).json()
    http.patch(auth + f"/accounts/{created['id']}", json={"first_name": "Erinn"},
                headers=registrar)  # fmt: skip
    relisted = http.get(api + "/users", params=after, headers=registrar).json()

    assert [(u["id"], u["first_name"], u["last_name"]) for u in listed] == [
        (created["id"], "Erin", "Early")
    ]
    assert relisted[0]["first_name"] == "Erinn"
