"""Tokens as SPEC section 3 has them, checked with PyJWT (the service signs with jwcrypto) against
the JWKS the service serves; access and refresh tokens never pass for each other."""

import base64
import hashlib
import hmac
import json
import sqlite3
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.auth.keys import generate_jwks
from app.auth.tokens import KeyRing
from tests.auth.helpers import (
    AUDIENCE,
    ISSUER,
    REFRESH_AUDIENCE,
    claims_for,
    sign,
    tokens_for,
    verify_with_pyjwt,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def _refresh(client, token: str):
    return client.post("/refresh", json={"refresh_token": token})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _refresh_claims(settings) -> dict:
    """A valid refresh token's claims for the seed registrar."""
    return claims_for(settings, ttl_seconds=60, token_use="refresh")


def test_the_served_jwks_holds_public_keys_only_and_matches_the_gateways_copy(client, settings):
    jwks = client.get("/.well-known/jwks.json").json()

    assert [key["kid"] for key in jwks["keys"]] == ["test-key"]
    key = jwks["keys"][0]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert not PRIVATE_MEMBERS & key.keys()
    gateway_copy = settings.private_jwks.parents[1] / "gateway" / "jwks.json"
    assert json.loads(gateway_copy.read_text()) == jwks


def test_an_access_token_carries_every_claim_of_the_spec(client):
    body = tokens_for(client, "rhenderson")
    token = body["access_token"]

    header = jwt.get_unverified_header(token)
    claims = verify_with_pyjwt(client, token)

    assert (header["alg"], header["kid"]) == ("RS256", "test-key")
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "1"
    assert claims["preferred_username"] == "rhenderson"
    assert claims["roles"] == ["registrar"]
    assert claims["exp"] - claims["iat"] == 20 * 60 == body["expires_in"]
    assert uuid.UUID(claims["jti"]).version == 4


def test_every_token_has_its_own_jti(client):
    first, second = tokens_for(client, "ajohnson"), tokens_for(client, "ajohnson")
    refreshed = _refresh(client, first["refresh_token"]).json()
    tokens = [
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
        refreshed["access_token"],
    ]

    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}

    assert len(jtis) == len(tokens)


def test_a_refresh_token_is_not_accepted_where_access_tokens_are(client):
    refresh_token = tokens_for(client, "ajohnson")["refresh_token"]

    # What a gateway does with it: the audience is wrong.
    with pytest.raises(jwt.InvalidAudienceError):
        verify_with_pyjwt(client, refresh_token, audience=AUDIENCE)
    claims = verify_with_pyjwt(client, refresh_token, audience=REFRESH_AUDIENCE)
    assert claims["sub"] == "9"
    assert claims["exp"] - claims["iat"] == 7 * 24 * 60 * 60


def test_refresh_issues_a_new_valid_access_token_and_the_next_refresh_token(client):
    refresh_token = tokens_for(client, "kavery")["refresh_token"]

    reply = _refresh(client, refresh_token)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["expires_in"] == 20 * 60
    claims = verify_with_pyjwt(client, body["access_token"])
    assert (claims["sub"], claims["preferred_username"], claims["roles"]) == (
        "3",
        "kavery",
        ["instructor"],
    )
    old = verify_with_pyjwt(client, refresh_token, audience=REFRESH_AUDIENCE)
    new = verify_with_pyjwt(client, body["refresh_token"], audience=REFRESH_AUDIENCE)
    assert body["refresh_token"] != refresh_token
    assert (new["sid"], new["seq"]) == (old["sid"], old["seq"] + 1)  # the same session, moved on


def test_refresh_refuses_an_access_token(client):
    access_token = tokens_for(client, "ajohnson")["access_token"]

    reply = _refresh(client, access_token)

    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_token"


def test_refresh_refuses_an_expired_refresh_token(client, settings):
    claims = claims_for(
        settings, (9, "ajohnson", "student"), ttl_seconds=60, token_use="refresh", now=1_000_000_000
    )
    assert _refresh(client, sign(settings, claims)).status_code == 401


def test_refresh_refuses_a_token_from_another_key_with_the_same_kid(client, settings):
    impostor = KeyRing(generate_jwks(["test-key"]))
    claims = _refresh_claims(settings)
    assert _refresh(client, impostor.sign(claims)).status_code == 401


def test_refresh_refuses_an_unsigned_token(client, settings):
    claims = _refresh_claims(settings)
    unsigned = f"{_b64({'alg': 'none', 'kid': 'test-key'})}.{_b64(claims)}."

    assert _refresh(client, unsigned).status_code == 401


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_refresh_refuses_a_token_for_another_issuer_or_audience(client, settings, claim):
    claims = _refresh_claims(settings)
    claims[claim] = "someone-else"

    assert _refresh(client, sign(settings, claims)).status_code == 401


def test_refresh_gives_the_roles_the_user_has_now(client, settings):
    refresh_token = tokens_for(client, "ajohnson")["refresh_token"]
    with sqlite3.connect(settings.database) as conn:
        conn.execute("INSERT INTO user_roles (user_id, role) VALUES (9, 'instructor')")

    access_token = _refresh(client, refresh_token).json()["access_token"]

    assert verify_with_pyjwt(client, access_token)["roles"] == ["student", "instructor"]


def test_refresh_for_a_deleted_account_is_401(client, settings):
    refresh_token = tokens_for(client, "ajohnson")["refresh_token"]
    with sqlite3.connect(settings.database) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM users WHERE id = 9")

    assert _refresh(client, refresh_token).status_code == 401


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": 5}])
def test_malformed_refresh_is_422(client, body):
    assert client.post("/refresh", json=body).status_code == 422


def test_refresh_refuses_hs256_signed_with_the_public_key(client, settings):
    """The algorithm-confusion attack: HMAC keyed with the public key everyone can fetch."""
    public_jwk = client.get("/.well-known/jwks.json").json()["keys"][0]
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(public_jwk)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "kid": public_jwk["kid"], "typ": "JWT"})
    signing_input = f"{header}.{_b64(_refresh_claims(settings))}"
    for key in (public_pem, json.dumps(public_jwk).encode()):
        mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        assert _refresh(client, forged).status_code == 401


def test_refresh_refuses_a_token_whose_kid_names_no_served_key(client, settings):
    stranger = KeyRing(generate_jwks(["other-key"]))
    assert _refresh(client, stranger.sign(_refresh_claims(settings))).status_code == 401
