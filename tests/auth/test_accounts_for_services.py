"""GET /internal/users/{id}: an account for the enrollment service, which asks for an id it has not
seen yet (service to service on loopback, with the gateway secret; no gateway routes it)."""

import pytest
from fastapi.testclient import TestClient

from app.auth.main import create_app
from harness.enroll_cluster import write_secret
from tests.auth.helpers import GOOD_PASSWORD, make_settings, register


def test_an_account_is_given_only_to_a_caller_with_the_gateway_secret(tmp_path):
    secret_file = write_secret(tmp_path / "gateway.secret")
    secret = secret_file.read_text().strip()
    settings = make_settings(tmp_path, gateway_secret_file=secret_file)
    with TestClient(create_app(settings)) as client:
        created = register(client, username="zng", first_name="Zoë", last_name="Ng").json()
        url = f"/internal/users/{created['id']}"

        found = client.get(url, headers={"X-Gateway-Secret": secret})
        seed = client.get("/internal/users/3", headers={"X-Gateway-Secret": secret})
        missing = client.get("/internal/users/999999", headers={"X-Gateway-Secret": secret})
        no_secret = client.get(url)
        wrong = client.get(url, headers={"X-Gateway-Secret": "x" * len(secret)})
        bad_id = client.get("/internal/users/0", headers={"X-Gateway-Secret": secret})

    assert found.status_code == 200
    assert found.json() == {
        "id": created["id"],
        "username": "zng",
        "first_name": "Zoë",
        "last_name": "Ng",
        "roles": ["student"],
        "email": "zng@example.edu",  # the notifier sends to it (issue 27)
    }
    assert (seed.json()["username"], seed.json()["roles"]) == ("kavery", ["instructor"])
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    for refused in (no_secret, wrong):
        assert (refused.status_code, refused.json()["code"]) == (401, "no_gateway")
        assert "Zoë" not in refused.text
    assert bad_id.status_code == 422


def test_without_a_configured_secret_nobody_gets_an_account(tmp_path):
    with TestClient(create_app(make_settings(tmp_path))) as client:
        refused = client.get("/internal/users/3", headers={"X-Gateway-Secret": "y" * 40})
    assert (refused.status_code, refused.json()["code"]) == (401, "no_gateway")


def test_a_registration_succeeds_when_no_enrollment_instance_can_be_told(tmp_path, caplog):
    """The announcement to enrollment (app/auth/announce.py) is best effort within its bound:
    with every instance down, the account is still created (enrollment asks for it later)."""
    secret_file = write_secret(tmp_path / "gateway.secret")
    settings = make_settings(
        tmp_path,
        gateway_secret_file=secret_file,
        enroll_urls="http://127.0.0.1:9,http://127.0.0.1:9",
    )
    with TestClient(create_app(settings)) as client:
        created = register(client, username="lonely", first_name="Lo", last_name="Nely")
        signed_in = client.post("/login", json={"username": "lonely", "password": GOOD_PASSWORD})

    assert created.status_code == 201, created.text
    assert signed_in.status_code == 200
    assert "could not announce account" in caplog.text


def test_enrollment_addresses_must_be_on_loopback(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        make_settings(tmp_path, enroll_urls="http://198.18.0.1:5000")


def test_a_batch_of_accounts_is_given_in_one_answer_only_to_a_service(tmp_path):
    secret_file = write_secret(tmp_path / "gateway.secret")
    secret = secret_file.read_text().strip()
    settings = make_settings(tmp_path, gateway_secret_file=secret_file)
    service = {"X-Gateway-Secret": secret}
    with TestClient(create_app(settings)) as client:
        found = client.get("/internal/users?ids=9&ids=3&ids=999999&ids=3", headers=service)
        no_secret = client.get("/internal/users?ids=3")
        bad = [
            client.get(f"/internal/users{query}", headers=service)
            for query in ("", "?ids=0", "?ids=x", "?" + "&".join(f"ids={i}" for i in range(1, 202)))
        ]

    assert found.status_code == 200
    assert [(a["id"], a["username"], a["email"]) for a in found.json()] == [
        (3, "kavery", "kavery@example.edu"),
        (9, "ajohnson", "ajohnson@example.edu"),
    ]  # the unknown id left out, each once, in id order
    assert (no_secret.status_code, no_secret.json()["code"]) == (401, "no_gateway")
    for refused in bad:
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error")
        assert "ids" in str(refused.json()["detail"])
