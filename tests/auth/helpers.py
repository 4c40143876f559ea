"""Plain helper functions for the auth tests: a fresh database and keys, requests, token checks."""

import base64
import functools
import hashlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import jwt
from fastapi.testclient import TestClient
from httpx import Response

from app.auth.init_db import init_database, init_keys
from app.auth.keys import generate_jwks, write_private_jwks
from app.auth.main import create_app
from app.auth.settings import Settings
from app.auth.tokens import KeyRing, TokenUse, build_claims
from harness.seed import DEMO_PASSWORD

ISSUER = "registrar-auth"
AUDIENCE = "registrar"
REFRESH_AUDIENCE = "registrar:refresh"
GOOD_PASSWORD = "correct-horse-battery"


# Abuse limits that tests of anything else never reach; tests/auth/test_throttle.py sets its own.
# The counting itself still runs, in a throttle.db of each test's own (beside the private JWKS).
ROOMY_LIMITS = {
    "login_failures_per_username": 10_000,
    "login_failures_per_address": 10_000,
    "registrations_per_address": 10_000,
}


@functools.cache
def _test_jwks() -> dict[str, Any]:
    """One private JWKS per test process: an RSA-2048 key takes about 45 ms of CPU to make, and
    the tests that make settings (about 400 of them) need a key, not a new one each."""
    return generate_jwks(["test-key"])


# The seed's hashes take 600,000 PBKDF2 iterations, 80 ms of CPU a sign-in, and these in-process
# tests sign seed users in some 250 times. Their copies here take 1,000: the same format and the
# same code (a hash names its iterations). tests/auth/test_login.py checks the shipped ones.
TEST_SEED_ITERATIONS = 1_000


@functools.cache
def _cheap_seed_hash() -> str:
    salt = "tests-seed-salt"
    digest = hashlib.pbkdf2_hmac(
        "sha256", DEMO_PASSWORD.encode(), salt.encode(), TEST_SEED_ITERATIONS
    )
    return f"pbkdf2_sha256${TEST_SEED_ITERATIONS}${salt}${base64.b64encode(digest).decode()}"


def make_settings(root: Path, *, shipped_seed_hashes: bool = False, **overrides) -> Settings:
    """A freshly initialised users database and key files under `root` (the process's one key
    pair, written as the service writes its own), and settings using them. The seed users keep
    the demo password, in hashes of TEST_SEED_ITERATIONS unless `shipped_seed_hashes`."""
    database = root / "users" / "auth.db"
    private_jwks = root / "auth" / "private.jwks.json"
    init_database(database)
    if not shipped_seed_hashes:
        with sqlite3.connect(database) as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE password_hash LIKE 'pbkdf2_sha256$%'",
                (_cheap_seed_hash(),),
            )
        conn.close()
    write_private_jwks(private_jwks, _test_jwks())
    init_keys(private_jwks, root / "gateway" / "jwks.json", "test-key")
    return Settings(database=database, private_jwks=private_jwks, **(ROOMY_LIMITS | overrides))


def new_user(**overrides) -> dict:
    body = {
        "username": "newstudent",
        "password": GOOD_PASSWORD,
        "first_name": "New",
        "last_name": "Student",
    }
    body.update(overrides)
    return body


def register(client: TestClient, token: str | None = None, **fields) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/register", json=new_user(**fields), headers=headers)


def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> Response:
    return client.post("/login", json={"username": username, "password": password})


def tokens_for(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> dict:
    reply = login(client, username, password)
    assert reply.status_code == 200, reply.text
    return reply.json()


def user_count(settings: Settings) -> int:
    with sqlite3.connect(settings.database) as conn:
        return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def stored_user(settings: Settings, username: str) -> dict | None:
    conn = sqlite3.connect(settings.database)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            return None
        roles = conn.execute(
            "SELECT role FROM user_roles WHERE user_id = ? ORDER BY role", (row["id"],)
        ).fetchall()
        return dict(row) | {"roles": [r["role"] for r in roles]}
    finally:
        conn.close()


def verify_with_pyjwt(client: TestClient, token: str, *, audience: str = AUDIENCE) -> dict:
    """Verify `token` with PyJWT (not the library that signed it) against the served JWKS."""
    jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(
        token,
        key=jwks[kid].key,
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
    )


def claims_for(
    settings: Settings,
    who: tuple = (1, "rhenderson", "registrar"),
    *,
    ttl_seconds: int = 600,
    token_use: TokenUse = "access",
    now: int | None = None,
) -> dict:
    """The claims the service issues for `who` (id, username, *roles): the seed registrar by
    default."""
    user_id, username, *roles = who
    return build_claims(
        user_id=user_id,
        username=username,
        given_name=username.title(),
        family_name="Test",
        roles=roles,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=ttl_seconds,
        token_use=token_use,
        now=now,
    )


def sign(settings: Settings, claims: dict) -> str:
    """A token signed with the service's own key, for claims the service would never issue."""
    return KeyRing.from_file(settings.private_jwks).sign(claims)


def replica_of(primary: TestClient, tmp_path, **overrides) -> TestClient:
    """A read-only node with a copy of the primary's database as it is now and the same key."""
    settings: Settings = primary.app.state.settings
    database = tmp_path / "replica" / "auth.db"
    database.parent.mkdir()
    shutil.copy(settings.database, database)
    replica_settings = Settings(
        database=database, private_jwks=settings.private_jwks, read_only=True, **overrides
    )
    return TestClient(create_app(replica_settings))
