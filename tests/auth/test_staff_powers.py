"""Staff powers checked against what is stored (issue 24): a registrar's token is only as good as
the account behind it, a registrar cannot restore or re-key themselves, the office always keeps
one active registrar, and every account change is audited. Through the app itself;
tests/e2e/test_staff_powers.py sends the same attacks through the real gateways."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from harness.seed import DEMO_PASSWORD
from tests.auth.helpers import GOOD_PASSWORD, login, register, tokens_for
from tests.bodies import refusal

NEW_PASSWORD = "a-brand-new-passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def office(client: TestClient, registrar_token: str) -> dict:
    """A second registrar, "breg", made by the seed registrar, and both of their tokens."""
    made = register(
        client,
        registrar_token,
        username="breg",
        first_name="Bea",
        last_name="Reg",
        roles=["registrar"],
    )
    assert made.status_code == 201, made.text
    return {
        "seed": bearer(registrar_token),
        "b_id": made.json()["id"],
        "b": bearer(tokens_for(client, "breg", GOOD_PASSWORD)["access_token"]),
    }


def test_a_disabled_and_demoted_registrar_cannot_restore_themselves(client, office):
    b_id = office["b_id"]
    demoted = client.patch(
        f"/accounts/{b_id}", json={"disabled": True, "roles": ["student"]}, headers=office["seed"]
    )
    assert demoted.status_code == 200, demoted.text

    # The attack of the report, with the access token B held before.
    restore = client.patch(
        f"/accounts/{b_id}", json={"disabled": False, "roles": ["registrar"]}, headers=office["b"]
    )
    rekey = client.put(
        f"/accounts/{b_id}/password", json={"password": NEW_PASSWORD}, headers=office["b"]
    )
    accomplice = register(
        client,
        office["b"]["Authorization"].split()[1],
        username="accomplice",
        roles=["registrar"],
    )
    enable_someone = client.patch("/accounts/1", json={"last_name": "X"}, headers=office["b"])
    look_around = client.get("/accounts", headers=office["b"])

    assert refusal(restore) == (409, "own_account")
    assert refusal(rekey) == (409, "own_account")
    assert refusal(accomplice) == (403, "account_disabled")
    assert refusal(enable_someone) == (403, "account_disabled")
    assert refusal(look_around) == (403, "account_disabled")
    account = client.get(f"/accounts/{b_id}", headers=office["seed"]).json()
    assert (account["disabled"], account["roles"]) == (True, ["student"])
    assert login(client, "breg", GOOD_PASSWORD).status_code == 403
    assert login(client, "breg", NEW_PASSWORD).status_code == 401
    assert login(client, "accomplice", GOOD_PASSWORD).status_code == 401


def test_a_demoted_registrars_token_and_refresh_stop_working_at_once(client, office):
    session = tokens_for(client, "breg", GOOD_PASSWORD)
    demoted = client.patch(
        f"/accounts/{office['b_id']}", json={"roles": ["instructor"]}, headers=office["seed"]
    )
    assert demoted.status_code == 200, demoted.text

    change = client.patch("/accounts/1", json={"first_name": "Rex"}, headers=office["b"])
    made = register(client, session["access_token"], username="viastale", roles=["instructor"])
    renewed = client.post("/refresh", json={"refresh_token": session["refresh_token"]})

    assert refusal(change) == (403, "registrar_required")
    assert refusal(made) == (403, "registrar_required")
    assert refusal(renewed) == (401, "session_ended")  # the role change moved the generation


def test_a_token_from_before_a_password_reset_is_refused_at_the_account_routes(client, office):
    reset = client.put(
        f"/accounts/{office['b_id']}/password",
        json={"password": NEW_PASSWORD},
        headers=office["seed"],
    )
    assert reset.status_code == 204, reset.text

    stale = client.get("/accounts", headers=office["b"])
    fresh = tokens_for(client, "breg", NEW_PASSWORD)["access_token"]

    assert refusal(stale) == (401, "session_ended")
    assert client.get("/accounts", headers=bearer(fresh)).status_code == 200


def test_a_registrar_may_still_correct_their_own_name(client, office):
    renamed = client.patch(
        f"/accounts/{office['b_id']}", json={"last_name": "Regan"}, headers=office["b"]
    )

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["last_name"] == "Regan"


def test_two_registrars_disabling_each_other_at_once_leave_one_standing(client, office):
    seed_id = 1
    # Only the two of them are registrars: the seed's other registrar accounts step aside.
    others = client.get("/accounts", params={"role": "registrar"}, headers=office["seed"]).json()
    for account in others:
        if account["id"] not in (seed_id, office["b_id"]):
            client.patch(
                f"/accounts/{account['id']}", json={"disabled": True}, headers=office["seed"]
            )

    def disable(by: dict, target: int):
        return client.patch(f"/accounts/{target}", json={"disabled": True}, headers=by)

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(disable, office["seed"], office["b_id"])
        b = pool.submit(disable, office["b"], seed_id)
        replies = [a.result(), b.result()]

    assert sorted(r.status_code for r in replies) == [200, 403]
    active = client.get(
        "/accounts", params={"role": "registrar", "disabled": False}, headers=office["seed"]
    )
    standing = (
        active
        if active.status_code == 200
        else client.get(
            "/accounts",
            params={"role": "registrar", "disabled": False},
            headers=office["b"],
        )
    )
    assert len(standing.json()) == 1


# the audit trail of account changes


def test_every_account_change_is_audited_with_actor_target_and_what_changed(
    client, office, registrar_token
):
    seed, b_id = office["seed"], office["b_id"]
    student = register(client, username="auditme").json()
    client.patch(
        f"/accounts/{student['id']}", json={"roles": ["student", "instructor"]}, headers=seed
    )
    client.patch(f"/accounts/{student['id']}", json={"last_name": "Renamed"}, headers=seed)
    client.patch(f"/accounts/{student['id']}", json={"disabled": True}, headers=seed)
    client.patch(f"/accounts/{student['id']}", json={"disabled": False}, headers=office["b"])
    client.put(f"/accounts/{student['id']}/password", json={"password": NEW_PASSWORD}, headers=seed)

    trail = client.get("/audit", params={"user_id": student["id"]}, headers=seed)

    assert trail.status_code == 200, trail.text
    entries = trail.json()
    assert [(e["action"], e["actor_id"]) for e in entries] == [
        ("account.password", 1),
        ("account.enable", b_id),
        ("account.disable", 1),
        ("account.names", 1),
        ("account.roles", 1),
    ]  # newest first; the self-registration itself is the student's, not a staff action
    assert entries[-1]["details"] == {
        "before": ["student"],
        "after": ["student", "instructor"],
    }
    assert entries[-2]["details"]["after"] == ["New", "Renamed"]
    assert all(e["user_id"] == student["id"] and e["at"].endswith("Z") for e in entries)
    assert NEW_PASSWORD not in trail.text and "hash" not in trail.text
    made = client.get("/audit", params={"action": "account.create"}, headers=seed).json()
    assert [(e["actor_id"], e["user_id"], e["details"]) for e in made] == [
        (1, b_id, {"username": "breg", "roles": ["registrar"]})
    ]


def test_the_account_audit_pages_and_filters_like_the_enrollment_audit(client, office):
    seed = office["seed"]
    for n in range(5):
        client.patch(f"/accounts/{office['b_id']}", json={"last_name": f"Row{n}"}, headers=seed)

    everything = client.get("/audit", params={"actor_id": 1}, headers=seed).json()
    seen, after = [], None
    while True:
        params = {"actor_id": 1, "limit": 2} | ({"after": after} if after else {})
        page = client.get("/audit", params=params, headers=seed).json()
        seen += [e["id"] for e in page]
        if len(page) < 2:
            break
        after = page[-1]["id"]

    assert seen == [e["id"] for e in everything] == sorted(seen, reverse=True)
    assert len(seen) == 6  # the account made, five renames
    assert refusal(client.get("/audit", params={"action": "account.hack"}, headers=seed))[0] == 422
    assert refusal(client.get("/audit", params={"limit": 0}, headers=seed))[0] == 422


def test_students_and_instructors_cannot_read_the_account_audit(client):
    for username in ("ajohnson", "kavery"):
        token = tokens_for(client, username, DEMO_PASSWORD)["access_token"]
        assert refusal(client.get("/audit", headers=bearer(token))) == (403, "registrar_required")
    assert client.get("/audit").status_code == 401
