"""Staff powers checked against what is stored, every account change audited, sessions that can
be ended (issue 24): the attacks of the black-box probe, through the real auth gateway, LiteFS
primary and replicas. Each reproduces what the probe did with the code before the fix."""

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness import http
from harness.cluster import Cluster
from harness.seed import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "a-brand-new-passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outcome(reply: httpx.Response) -> tuple[int, str | None]:
    code = reply.json().get("code") if reply.content else None
    return reply.status_code, code


@pytest.fixture
def auth(cluster: Cluster) -> str:
    return cluster.auth_gateway.url + "/auth_api"


def make_registrar(cluster: Cluster, auth: str) -> tuple[dict, str]:
    """A new registrar made by the seed registrar: (account, access token)."""
    seed = cluster.login("rhenderson")["access_token"]
    username = f"reg-{secrets.token_hex(3)}"
    made = http.post(
        auth + "/register",
        json={"username": username, "password": PASSWORD, "first_name": "Rae",
              "last_name": "Gist", "roles": ["registrar"]},
        headers=bearer(seed),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json(), cluster.login(username, PASSWORD)["access_token"]


def test_a_disabled_and_demoted_registrar_cannot_restore_themselves(cluster: Cluster, auth):
    seed = bearer(cluster.login("rhenderson")["access_token"])
    account, stale = make_registrar(cluster, auth)
    me = f"/accounts/{account['id']}"
    demoted = http.patch(auth + me, json={"disabled": True, "roles": ["student"]}, headers=seed)
    assert demoted.status_code == 200, demoted.text

    # The probe's steps, with the access token held from before.
    restore = http.patch(
        auth + me, json={"disabled": False, "roles": ["registrar"]}, headers=bearer(stale)
    )
    rekey = http.put(
        auth + me + "/password", json={"password": NEW_PASSWORD}, headers=bearer(stale)
    )
    accomplice = http.post(
        auth + "/register",
        json={"username": f"acc-{secrets.token_hex(3)}", "password": PASSWORD,
              "first_name": "Ac", "last_name": "Complice", "roles": ["registrar"]},
        headers=bearer(stale),
    )  # fmt: skip
    other = http.patch(auth + "/accounts/2", json={"disabled": True}, headers=bearer(stale))
    signs_in = http.post(
        auth + "/login", json={"username": account["username"], "password": NEW_PASSWORD}
    )

    assert outcome(restore) == (409, "own_account")
    assert outcome(rekey) == (409, "own_account")
    assert outcome(accomplice) == (403, "account_disabled")
    assert outcome(other) == (403, "account_disabled")
    assert signs_in.status_code == 401  # the password was never changed
    stored = http.get(auth + me, headers=seed).json()
    assert (stored["disabled"], stored["roles"]) == (True, ["student"])
    assert http.get(auth + "/accounts/2", headers=seed).json()["disabled"] is False


def test_a_demoted_registrars_refresh_ends_and_their_token_is_refused_at_once(
    cluster: Cluster, auth
):
    seed = bearer(cluster.login("rhenderson")["access_token"])
    account, _ = make_registrar(cluster, auth)
    session = cluster.login(account["username"], PASSWORD)

    demoted = http.patch(
        auth + f"/accounts/{account['id']}", json={"roles": ["instructor"]}, headers=seed
    )
    renewed = http.post(auth + "/refresh", json={"refresh_token": session["refresh_token"]})
    listing = http.get(auth + "/accounts", headers=bearer(session["access_token"]))

    assert demoted.status_code == 200, demoted.text
    assert outcome(renewed) == (401, "session_ended")
    assert outcome(listing) == (403, "registrar_required")


def test_two_registrars_disabling_each_other_at_once_never_leave_none(cluster: Cluster, auth):
    seed = bearer(cluster.login("rhenderson")["access_token"])
    first, first_token = make_registrar(cluster, auth)
    second, second_token = make_registrar(cluster, auth)

    def disable(token: str, target: dict) -> httpx.Response:
        return http.patch(
            auth + f"/accounts/{target['id']}", json={"disabled": True}, headers=bearer(token)
        )

    with ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(disable, [first_token, second_token], [second, first])  # type: ignore[arg-type]
        )

    assert sorted(reply.status_code for reply in replies) == [200, 403]
    states = [http.get(auth + f"/accounts/{a['id']}", headers=seed).json() for a in (first, second)]
    assert sorted(state["disabled"] for state in states) == [False, True]


def test_account_changes_show_in_the_audit_with_its_filters_and_paging(cluster: Cluster, auth):
    seed = bearer(cluster.login("rhenderson")["access_token"])
    account, _ = make_registrar(cluster, auth)
    target = f"/accounts/{account['id']}"
    http.patch(auth + target, json={"roles": ["instructor"]}, headers=seed)
    http.patch(auth + target, json={"disabled": True}, headers=seed)
    http.put(auth + target + "/password", json={"password": NEW_PASSWORD}, headers=seed)

    trail = http.get(auth + "/audit", params={"user_id": account["id"]}, headers=seed)
    page = http.get(
        auth + "/audit", params={"user_id": account["id"], "limit": 2}, headers=seed
    ).json()
    older = http.get(
        auth + "/audit",
        params={"user_id": account["id"], "limit": 2, "after": page[-1]["id"]},
        headers=seed,
    ).json()
    student = cluster.login("ajohnson")["access_token"]

    assert trail.status_code == 200, trail.text
    assert [(e["action"], e["actor_id"]) for e in trail.json()] == [
        ("account.password", 1),
        ("account.disable", 1),
        ("account.roles", 1),
        ("account.create", 1),
    ]
    assert page + older == trail.json()
    assert NEW_PASSWORD not in trail.text
    assert http.get(auth + "/audit", headers=bearer(student)).status_code == 403  # the gateway's


def test_refresh_tokens_rotate_and_logout_ends_the_session_through_the_gateway(
    cluster: Cluster, auth
):
    session = cluster.login("ajohnson", DEMO_PASSWORD)
    first = session["refresh_token"]
    turned = http.post(auth + "/refresh", json={"refresh_token": first})
    assert turned.status_code == 200, turned.text
    second = turned.json()["refresh_token"]

    reused = http.post(auth + "/refresh", json={"refresh_token": first})
    after_reuse = http.post(auth + "/refresh", json={"refresh_token": second})

    other = cluster.login("ajohnson", DEMO_PASSWORD)["refresh_token"]
    out = http.post(auth + "/logout", json={"refresh_token": other})
    after_logout = http.post(auth + "/refresh", json={"refresh_token": other})

    assert outcome(reused) == (401, "refresh_token_reused")
    assert outcome(after_reuse) == (401, "session_ended")
    assert out.status_code == 204
    assert outcome(after_logout) == (401, "session_ended")


# finding 4 and the CSV import, through the enroll gateway


def test_an_instructor_cannot_grant_themself_a_permit_nor_be_enrolled(cluster: Cluster):
    api = cluster.enroll_gateway.url + "/enroll_api"
    instructor = bearer(cluster.login("kavery")["access_token"])  # teaches section 1 (full)
    registrar = bearer(cluster.login("rhenderson")["access_token"])
    audit_before = http.get(api + "/audit", headers=registrar).json()

    permit = http.post(
        api + "/sections/1/permits",
        json={"user_id": 3, "waives": ["capacity"]},
        headers=instructor,
    )
    enrolled = http.post(api + "/users/3/enrollments", json={"section_id": 1}, headers=registrar)

    assert outcome(permit) == (409, "not_a_student")
    assert outcome(enrolled) == (409, "not_a_student")
    assert "user 3 (kavery)" in permit.json()["detail"]
    roster = http.get(api + "/sections/1/enrollments", headers=registrar).json()
    assert 3 not in {row["user_id"] for row in roster}
    assert http.get(api + "/audit", headers=registrar).json() == audit_before  # nothing done


def test_a_csv_with_a_non_ascii_digit_is_refused_naming_its_line_and_imports_nothing(
    cluster: Cluster,
):
    api = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.login("rhenderson")["access_token"])
    csv = "\ufeffuser_id,course_code\n29,CPSC 131\n\u00b2,CPSC 131\n\u0669,CPSC 131\n"

    reply = http.post(
        api + "/completed-courses",
        content=csv.encode(),
        headers=registrar | {"Content-Type": "text/csv"},
    )
    fine = http.post(
        api + "/completed-courses",
        content="\ufeffuser_id,course_code\n29,CPSC 131\n".encode(),
        headers=registrar | {"Content-Type": "text/csv"},
    )

    assert outcome(reply) == (422, "csv_rows")
    assert "line 3: user_id" in reply.json()["detail"]
    assert fine.status_code in (200, 201), fine.text  # the byte order mark is accepted
