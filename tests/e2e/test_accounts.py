"""Accounts across the two services, through both real gateways (issue 13): an account made at
the auth service is known to the enrollment service on the very next request, with its name,
without that user ever having called it."""

import secrets

import httpx
import pytest

from harness.cluster import Cluster
from harness.seed import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_new_instructor_is_assignable_on_the_next_request_and_sees_the_roster(cluster: Cluster):
    auth = cluster.auth_gateway.url + "/auth_api"
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = cluster.login("rhenderson", DEMO_PASSWORD)["access_token"]
    username = f"instr-{secrets.token_hex(3)}"

    created = httpx.post(
        auth + "/register",
        json={"username": username, "password": PASSWORD, "first_name": "Ingrid",
              "last_name": "Okafor", "roles": ["instructor"]},
        headers=bearer(registrar),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    instructor_id = created.json()["id"]
    section = httpx.post(
        api + "/sections",
        json={"course_id": 4, "section_number": 60, "instructor_id": instructor_id, "capacity": 3},
        headers=bearer(registrar),
    )
    record = httpx.get(api + f"/users/{instructor_id}", headers=bearer(registrar))
    token = httpx.post(auth + "/login", json={"username": username, "password": PASSWORD}).json()
    roster = httpx.get(
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

    assigned = httpx.patch(api + "/sections/1", json={"instructor_id": 987654}, headers=registrar)
    looked_up = httpx.get(api + "/users/987654", headers=registrar)

    assert assigned.status_code == 404 and "987654" in assigned.json()["detail"]
    assert looked_up.status_code == 404 and "987654" in looked_up.json()["detail"]


def test_a_new_student_cannot_be_assigned_to_teach(cluster: Cluster):
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson", DEMO_PASSWORD)["access_token"])
    student = httpx.post(
        cluster.auth_gateway.url + "/auth_api/register",
        json={"username": f"stu-{secrets.token_hex(3)}", "password": PASSWORD,
              "first_name": "Sam", "last_name": "Lee"},
    ).json()  # fmt: skip

    assigned = httpx.patch(api + "/sections/1", json={"instructor_id": student["id"]},
                           headers=registrar)  # fmt: skip

    assert (assigned.status_code, assigned.json()["code"]) == (409, "not_an_instructor")
