"""A replica that must refuse a login or a refresh asks the primary once (AUTH_PRIMARY_URL): a user
who has just registered can sign in on any node before their row has been replicated there. A
registration that reaches a replica is relayed to the primary, which writes it.

Here the "replica" is a copy of the primary's database taken before the registration, and the
primary is the real app behind a TestClient (an httpx.Client). tests/e2e does it with LiteFS."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth import primary as primary_line
from app.auth.main import create_app
from app.auth.primary import REPLICA_HEADER, replica_secret
from app.auth.settings import Settings
from harness.seed import DEMO_PASSWORD
from tests.auth.helpers import (
    GOOD_PASSWORD,
    login,
    make_settings,
    register,
    replica_of,
    stored_user,
    verify_with_pyjwt,
)
from tests.bodies import error_of, refusal


@pytest.fixture
def primary(tmp_path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "primary")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The paths a node asked its primary about."""
    paths: list[str] = []
    real = primary_line.ask_primary

    def recording(client, path, body, answer):
        paths.append(path)
        return real(client, path, body, answer)

    monkeypatch.setattr(primary_line, "ask_primary", recording)
    return paths


def test_a_user_not_yet_replicated_signs_in_on_the_replica_through_the_primary(
    primary, tmp_path, asked
):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = primary
        user = register(primary).json()  # after the copy: the replica lags behind

        reply = login(replica, "newstudent", GOOD_PASSWORD)

    assert reply.status_code == 200, reply.text
    assert verify_with_pyjwt(primary, reply.json()["access_token"])["sub"] == str(user["id"])
    assert asked == ["/login"]


def test_unknown_user_and_wrong_password_both_ask_the_primary_and_get_the_same_401(
    primary, tmp_path, asked
):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = primary
        unknown = login(replica, "nosuchuser", GOOD_PASSWORD)
        wrong = login(replica, "ajohnson", "not-the-password")

    assert unknown.status_code == wrong.status_code == 401
    assert error_of(unknown) == error_of(wrong)
    assert asked == ["/login", "/login"]  # same work for both, so the same time


def test_a_user_the_replica_has_signs_in_without_asking(primary, tmp_path, asked):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = primary
        assert login(replica, "ajohnson").status_code == 200
    assert asked == []


def test_the_primary_never_asks_anyone(primary, asked):
    primary.app.state.primary.client = primary  # even if misconfigured with a "primary" of its own
    assert login(primary, "nosuchuser", GOOD_PASSWORD).status_code == 401
    assert asked == []


def test_a_primary_that_is_down_leaves_the_replicas_own_401(primary, tmp_path, caplog):
    settings: Settings = primary.app.state.settings
    closed_port = "http://127.0.0.1:9"  # discard: nothing listens there
    with replica_of(primary, tmp_path, primary_url=closed_port) as replica:
        assert replica.app.state.primary.client is not None  # from AUTH_PRIMARY_URL at start-up
        reply = login(replica, "nosuchuser", GOOD_PASSWORD)

    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_credentials"
    assert "could not ask the primary" in caplog.text
    assert settings.primary_url is None


def test_a_refresh_sent_to_a_replica_is_made_by_the_primary_which_keeps_the_sessions(
    primary, tmp_path
):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = primary
        register(primary)  # not yet on the replica either
        tokens = login(primary, "newstudent", GOOD_PASSWORD).json()

        reply = replica.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
        again = replica.post("/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert reply.status_code == 200, reply.text
    assert verify_with_pyjwt(primary, reply.json()["access_token"])["preferred_username"] == (
        "newstudent"
    )
    # The primary recorded the rotation: the same token again is a reuse, wherever it is sent.
    assert refusal(again) == (401, "refresh_token_reused")


def test_a_refresh_at_a_replica_whose_primary_is_down_is_503_and_changes_nothing(primary, tmp_path):
    tokens = login(primary, "ajohnson", DEMO_PASSWORD).json()
    with replica_of(primary, tmp_path, primary_url="http://127.0.0.1:9") as replica:
        down = replica.post("/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert refusal(down) == (503, "primary_unavailable")
    # Nothing was used up: the primary, back, renews the same token.
    assert (
        primary.post("/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    )


def test_primary_url_must_be_a_url(tmp_path):
    base = make_settings(tmp_path)
    with pytest.raises(ValueError, match="primary_url"):
        Settings(database=base.database, private_jwks=base.private_jwks, primary_url="primary")


# registrations that reach a replica: relayed to the primary, which writes them


def marked(primary: TestClient) -> TestClient:
    """The primary as a replica's client reaches it: every request carries the replica's mark."""
    secret = replica_secret(primary.app.state.keys)
    return TestClient(primary.app, headers={REPLICA_HEADER: secret})


def test_a_registration_on_a_replica_is_made_by_the_primary(primary, tmp_path):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = marked(primary)
        reply = register(replica)

    assert reply.status_code == 201, reply.text
    assert reply.json()["username"] == "newstudent"
    assert stored_user(primary.app.state.settings, "newstudent")["id"] == reply.json()["id"]
    assert login(primary, "newstudent", GOOD_PASSWORD).status_code == 200


def test_the_primarys_refusal_of_a_relayed_registration_is_passed_on(primary, tmp_path):
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = marked(primary)
        taken = register(replica, username="ajohnson")

    assert taken.status_code == 409
    assert error_of(taken) == {"detail": "username 'ajohnson' is taken", "code": "username_taken"}


def test_a_replica_refuses_what_it_can_decide_without_asking(primary, tmp_path, monkeypatch):
    relayed: list[str] = []
    monkeypatch.setattr(primary_line, "forward", lambda *args: relayed.append(args[1].path))
    with replica_of(primary, tmp_path) as replica:
        replica.app.state.primary.client = marked(primary)
        instructor = register(replica, roles=["instructor"])  # no registrar token
        weak = register(replica, password="short")

    assert (instructor.status_code, instructor.json()["code"]) == (403, "registrar_required")
    assert weak.status_code == 422
    assert relayed == []


def test_a_registration_while_the_primary_is_down_is_a_clear_503(primary, tmp_path, caplog):
    closed_port = "http://127.0.0.1:9"  # discard: nothing listens there
    with replica_of(primary, tmp_path, primary_url=closed_port) as replica:
        reply = register(replica)

    assert reply.status_code == 503
    assert reply.json()["code"] == "primary_unavailable"
    assert "try again" in reply.json()["detail"]
    assert "could not reach the primary" in caplog.text
    assert stored_user(primary.app.state.settings, "newstudent") is None
