"""The command-line pieces: mkjwks.py, mkclaims.py, the auth init, and start-up refusals."""

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from app.auth.main import create_app
from app.auth.settings import Settings
from tests.auth.helpers import (
    GOOD_PASSWORD,
    make_settings,
    register,
    tokens_for,
    verify_with_pyjwt,
)

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = json.loads((ROOT / "share" / "seed" / "people.json").read_text())


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_env | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _modulus_bits(key: dict) -> int:
    return len(base64.urlsafe_b64decode(key["n"] + "==")) * 8


def test_mkjwks_prints_private_rs256_keys_named_as_asked():
    result = run("bin/mkjwks.py", "first", "second")

    assert result.returncode == 0, result.stderr
    keys = json.loads(result.stdout)["keys"]
    assert [key["kid"] for key in keys] == ["first", "second"]
    for key in keys:
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        assert {"d", "p", "q"} <= key.keys()
        assert _modulus_bits(key) == 2048
    assert keys[0]["n"] != keys[1]["n"]


@pytest.mark.parametrize("args", [[], ["same", "same"]])
def test_mkjwks_refuses_no_or_repeated_key_ids(args):
    result = run("bin/mkjwks.py", *args)

    assert result.returncode == 2
    assert "usage" in result.stderr


def test_mkclaims_prints_the_claims_the_service_issues():
    result = run("bin/mkclaims.py", "ajohnson", "9", "student")

    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["iss"] == "registrar-auth"
    assert claims["aud"] == "registrar"
    assert (claims["sub"], claims["preferred_username"], claims["roles"]) == (
        "9",
        "ajohnson",
        ["student"],
    )
    assert claims["exp"] - claims["iat"] == 1200
    assert (claims["given_name"], claims["family_name"]) == ("Ava", "Johnson")  # the seed's
    named = json.loads(
        run(
            "bin/mkclaims.py", "zng", "77", "student", "--given-name", "Zoë", "--family-name", "Ng"
        ).stdout
    )
    assert (named["given_name"], named["family_name"]) == ("Zoë", "Ng")
    another = json.loads(run("bin/mkclaims.py", "ajohnson", "9", "student").stdout)
    assert claims["jti"] != another["jti"]


def test_mkclaims_follows_the_services_settings_and_refuses_unknown_roles():
    custom = run("bin/mkclaims.py", "x", "1", "registrar", env={"AUTH_AUDIENCE": "elsewhere"})
    refresh = run("bin/mkclaims.py", "x", "1", "registrar", "--refresh")
    bad_role = run("bin/mkclaims.py", "x", "1", "admin")

    assert json.loads(custom.stdout)["aud"] == "elsewhere"
    assert json.loads(refresh.stdout)["aud"] == "registrar:refresh"
    assert bad_role.returncode == 2
    assert "admin" in bad_role.stderr


def test_a_token_made_with_mkjwks_and_mkclaims_is_a_registrars_token_to_the_service(tmp_path):
    settings = make_settings(tmp_path / "base")
    jwks_file = tmp_path / "mine.jwks.json"
    jwks_file.write_text(run("bin/mkjwks.py", "seed-key").stdout)
    jwks_file.chmod(0o600)
    claims = json.loads(run("bin/mkclaims.py", "rhenderson", "1", "registrar").stdout)
    private_key = jwt.PyJWK(json.loads(jwks_file.read_text())["keys"][0]).key
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": "seed-key"})
    app = create_app(Settings(database=settings.database, private_jwks=jwks_file))

    with TestClient(app) as client:
        reply = register(client, token=token, username="newprof", roles=["instructor"])
        assert reply.status_code == 201, reply.text
        own_token = tokens_for(client, "newprof", GOOD_PASSWORD)["access_token"]

        assert jwt.get_unverified_header(own_token)["kid"] == "seed-key"
        assert verify_with_pyjwt(client, own_token)["roles"] == ["instructor"]


def _init(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "-m",
        "app.auth.init_db",
        "--database",
        str(tmp_path / "users" / "auth.db"),
        "--private-jwks",
        str(tmp_path / "auth" / "private.jwks.json"),
        "--public-jwks",
        str(tmp_path / "gateway" / "jwks.json"),
        *extra,
    )


def test_init_creates_the_seed_users_a_private_key_and_its_public_half(tmp_path):
    result = _init(tmp_path, "--kid", "k1")

    assert result.returncode == 0, result.stderr
    private_file = tmp_path / "auth" / "private.jwks.json"
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    private = json.loads(private_file.read_text())["keys"]
    public = json.loads((tmp_path / "gateway" / "jwks.json").read_text())["keys"]
    assert [k["kid"] for k in private] == [k["kid"] for k in public] == ["k1"]
    assert "d" in private[0] and "d" not in public[0]
    assert public[0]["n"] == private[0]["n"]
    with sqlite3.connect(tmp_path / "users" / "auth.db") as conn:
        users = conn.execute("SELECT id, username FROM users ORDER BY id").fetchall()
    assert users == [(p["id"], p["username"]) for p in PEOPLE]


def test_init_run_again_keeps_the_key_and_the_users(tmp_path):
    assert _init(tmp_path).returncode == 0
    private_file = tmp_path / "auth" / "private.jwks.json"
    first_key = private_file.read_text()
    (tmp_path / "gateway" / "jwks.json").unlink()  # the gateway's copy is rebuilt from the key

    again = _init(tmp_path)

    assert again.returncode == 0, again.stderr
    assert "kept the existing key" in again.stdout
    assert private_file.read_text() == first_key
    public = json.loads((tmp_path / "gateway" / "jwks.json").read_text())["keys"]
    assert public[0]["n"] == json.loads(first_key)["keys"][0]["n"]
    with sqlite3.connect(tmp_path / "users" / "auth.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == len(PEOPLE)


def test_init_refuses_a_private_key_others_can_read(tmp_path):
    assert _init(tmp_path).returncode == 0
    (tmp_path / "auth" / "private.jwks.json").chmod(0o644)

    again = _init(tmp_path)

    assert again.returncode == 1
    assert "chmod 600" in again.stderr


def test_init_makes_the_keys_and_the_database_separately(tmp_path):
    # bin/init.sh makes the keys; the LiteFS primary makes the database inside its mount.
    private_file = tmp_path / "auth" / "private.jwks.json"
    keys_only = run(
        "-m", "app.auth.init_db",
        "--private-jwks", str(private_file), "--public-jwks", str(tmp_path / "jwks.json"),
    )  # fmt: skip
    database_only = run("-m", "app.auth.init_db", "--database", str(tmp_path / "auth.db"))

    assert keys_only.returncode == 0, keys_only.stderr
    assert private_file.exists() and not (tmp_path / "users").exists()
    assert database_only.returncode == 0, database_only.stderr
    assert f"{len(PEOPLE)} seed users added" in database_only.stdout
    assert "public keys" not in database_only.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["--private-jwks", "p.json"], ["--public-jwks", "j.json", "--database", "a.db"]],
    ids=["nothing", "private-only", "public-only"],
)
def test_init_refuses_half_a_key_pair_or_nothing_to_do(tmp_path, args):
    result = run("-m", "app.auth.init_db", *args)

    assert result.returncode == 2
    assert "--private-jwks" in result.stderr or "nothing to do" in result.stderr
    assert not list(tmp_path.iterdir()) and not (ROOT / "a.db").exists()


def _start_service(env: dict) -> subprocess.CompletedProcess:
    # If the app wrongly starts, uvicorn serves until the timeout and the test fails on that.
    args = ["-m", "uvicorn", "app.auth.main:app", "--host", "127.0.0.1", "--port", "0"]
    return run(*args, env=env, timeout=30)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=lambda mode: f"{mode:04o}")
def test_the_service_refuses_to_start_with_a_private_key_others_can_read(tmp_path, mode):
    settings = make_settings(tmp_path)
    settings.private_jwks.chmod(mode)

    result = _start_service(
        {"AUTH_DATABASE": str(settings.database), "AUTH_PRIVATE_JWKS": str(settings.private_jwks)}
    )

    assert result.returncode != 0
    assert "AUTH_PRIVATE_JWKS" in result.stderr
    assert "chmod 600" in result.stderr


def test_the_service_refuses_to_start_without_its_settings(tmp_path):
    result = _start_service({"AUTH_DATABASE": str(tmp_path / "missing.db")})

    assert result.returncode != 0
    assert "AUTH_DATABASE" in result.stderr and "app.auth.init_db" in result.stderr
    assert "AUTH_PRIVATE_JWKS" in result.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("PRAGMA application_id = 1162760780", "is not this service's database"),  # enrollment's
        ("PRAGMA user_version = 0", "schema version 0"),
    ],
)
def test_the_service_refuses_to_start_on_a_database_of_the_wrong_schema(tmp_path, damage, message):
    settings = make_settings(tmp_path)
    conn = sqlite3.connect(settings.database)
    conn.execute(damage)
    conn.close()

    result = _start_service(
        {"AUTH_DATABASE": str(settings.database), "AUTH_PRIVATE_JWKS": str(settings.private_jwks)}
    )

    assert result.returncode != 0
    assert "AUTH_DATABASE" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
