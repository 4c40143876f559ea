"""Sessions (issue 24): refresh tokens rotate on use, a used one presented again ends its session
(OAuth 2.0 Security BCP), and POST /logout ends a session server-side."""

from fastapi.testclient import TestClient

from tests.auth.helpers import replica_of, tokens_for
from tests.bodies import error_of, refusal


def refresh(client: TestClient, token: str):
    return client.post("/refresh", json={"refresh_token": token})


def test_each_refresh_hands_over_the_next_token_and_the_chain_goes_on(client):
    token = tokens_for(client, "ajohnson")["refresh_token"]
    for _ in range(4):
        reply = refresh(client, token)
        assert reply.status_code == 200, reply.text
        token = reply.json()["refresh_token"]


def test_a_stolen_refresh_token_used_after_its_owner_ends_the_session_for_both(client):
    first = tokens_for(client, "ajohnson")["refresh_token"]
    owners = refresh(client, first).json()["refresh_token"]  # the owner refreshes, as usual

    thief = refresh(client, first)  # the copy taken earlier
    owner_next = refresh(client, owners)

    assert refusal(thief) == (401, "refresh_token_reused")
    # The session is over for whoever holds the newest token too: nobody can tell who is who.
    assert refusal(owner_next) == (401, "session_ended")


def test_a_thief_who_refreshes_first_loses_the_session_when_the_owner_comes_back(client):
    first = tokens_for(client, "ajohnson")["refresh_token"]
    thiefs = refresh(client, first).json()["refresh_token"]

    owner = refresh(client, first)
    thief_next = refresh(client, thiefs)

    assert refusal(owner) == (401, "refresh_token_reused")
    assert refusal(thief_next) == (401, "session_ended")


def test_sign_out_ends_the_session_and_no_other(client):
    mine = tokens_for(client, "ajohnson")["refresh_token"]
    other_tab = tokens_for(client, "ajohnson")["refresh_token"]

    out = client.post("/logout", json={"refresh_token": mine})
    again = client.post("/logout", json={"refresh_token": mine})

    assert out.status_code == 204 and out.content == b""
    assert again.status_code == 204  # signing out twice is no error
    assert refusal(refresh(client, mine)) == (401, "session_ended")
    assert refresh(client, other_tab).status_code == 200


def test_sign_out_with_an_older_token_of_the_session_ends_it_too(client):
    first = tokens_for(client, "ajohnson")["refresh_token"]
    current = refresh(client, first).json()["refresh_token"]

    assert client.post("/logout", json={"refresh_token": first}).status_code == 204
    assert refusal(refresh(client, current)) == (401, "session_ended")


def test_sign_out_refuses_what_is_not_a_refresh_token(client):
    tokens = tokens_for(client, "ajohnson")

    access = client.post("/logout", json={"refresh_token": tokens["access_token"]})
    garbage = client.post("/logout", json={"refresh_token": "not.a.token"})
    missing = client.post("/logout", json={})
    extra = client.post("/logout", json={"refresh_token": tokens["refresh_token"], "all": True})

    assert refusal(access) == (401, "invalid_token")
    assert refusal(garbage) == (401, "invalid_token")
    assert missing.status_code == 422 and error_of(missing)["errors"][0]["field"] == (
        "refresh_token"
    )
    assert extra.status_code == 422 and error_of(extra)["errors"][0]["field"] == "all"
    assert refresh(client, tokens["refresh_token"]).status_code == 200  # nothing was ended


def test_sign_out_at_a_replica_is_made_by_the_primary(client, tmp_path):
    token = tokens_for(client, "ajohnson")["refresh_token"]
    with replica_of(client, tmp_path) as replica:
        replica.app.state.primary.client = client
        out = replica.post("/logout", json={"refresh_token": token})

    assert out.status_code == 204
    assert refusal(refresh(client, token)) == (401, "session_ended")
