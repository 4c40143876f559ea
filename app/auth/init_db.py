"""Initialise the auth service: users database (schema + seed users) and signing keys.

    python -m app.auth.init_db --database var/auth/auth.db \\
        --private-jwks var/auth/private.jwks.json --public-jwks var/gateway/jwks.json

Either half may be done alone: bin/init.sh makes the keys, and the LiteFS primary creates the
database inside its mount on first start (bin/auth-node), so that LiteFS replicates it.

Safe to rerun: the schema is IF NOT EXISTS, seed users already present are left alone, and an
existing private key is kept (the public JWKS is rewritten from it, so the gateways always match).
"""

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from app.auth import keys, queries
from app.common import idempotency
from app.common.db import apply_schema, connect, immediate, migrate

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "share" / "auth" / "schema.sql"
SEED_PEOPLE = ROOT / "share" / "seed" / "people.json"
SEED_PASSWORDS = ROOT / "share" / "auth" / "seed_passwords.json"


def init_database(path: Path) -> int:
    """Create the schema and add the seed users missing from `path`; return how many were added."""
    people = json.loads(SEED_PEOPLE.read_text())
    hashes = json.loads(SEED_PASSWORDS.read_text())["hashes"]
    missing = sorted({person["username"] for person in people} - hashes.keys())
    if missing:
        raise SystemExit(f"{SEED_PASSWORDS} has no password hash for: {', '.join(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn, _MIGRATIONS, first_table="users")
        apply_schema(conn, SCHEMA.read_text())
        idempotency.create_table(conn)
        added = 0
        with immediate(conn):
            for person in people:
                if queries.get(conn, user_id=person["id"]) is not None:
                    continue
                queries.create(
                    conn,
                    user_id=person["id"],
                    username=person["username"],
                    password_hash=hashes[person["username"]],
                    first_name=person["first_name"],
                    last_name=person["last_name"],
                    roles=person["roles"],
                )
                added += 1
        return added
    finally:
        conn.close()


def _table_in_schema(name: str) -> str:
    """The CREATE TABLE statement of `name` in share/auth/schema.sql."""
    found = re.search(rf"CREATE TABLE IF NOT EXISTS {name} \(.*?\n\);", SCHEMA.read_text(), re.S)
    assert found is not None, name
    return found.group(0)


# Each step takes a database from the version before it to its own (share/auth/schema.sql is the
# latest whole). A database made by an older release is brought up to date at the primary's start.
_MIGRATIONS = {
    2: [
        "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0"
        " CHECK (disabled IN (0, 1))",
        "ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0",
    ],
    # The sessions and account_audit tables are new: the schema file's IF NOT EXISTS makes them.
    3: [],
    # idempotency_keys is new: share/common/idempotency.sql makes it (IF NOT EXISTS).
    4: [],
    # users.email (NULL: the default address), and 'account.email' among account_audit's actions:
    # SQLite changes a CHECK only by making the table again. An older database without the table
    # gets an empty one first, so that one list of steps serves every version. The new table is
    # the schema file's own statement, so the two cannot disagree.
    5: [
        "ALTER TABLE users ADD COLUMN email TEXT"
        " CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254)",
        "CREATE TABLE IF NOT EXISTS account_audit (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " at TEXT, actor_id INTEGER, action TEXT, user_id INTEGER, details TEXT)",
        _table_in_schema("account_audit").replace(
            "IF NOT EXISTS account_audit", "account_audit_v5"
        ),
        "INSERT INTO account_audit_v5 (id, at, actor_id, action, user_id, details)"
        " SELECT id, at, actor_id, action, user_id, details FROM account_audit",
        "DROP TABLE account_audit",
        "ALTER TABLE account_audit_v5 RENAME TO account_audit",
    ],
}


def init_keys(private_path: Path, public_path: Path, kid: str) -> bool:
    """Generate the private JWKS unless it exists; (re)write the public JWKS from it.

    Return True if a new key was generated.
    """
    generated = not private_path.exists()
    if generated:
        keys.write_private_jwks(private_path, keys.generate_jwks([kid]))
    else:
        keys.check_private_file(private_path)
    private = json.loads(private_path.read_text())
    keys.write_public_jwks(public_path, keys.public_jwks(private))
    return generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.auth.init_db", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database", type=Path, help="users database to create")
    parser.add_argument("--private-jwks", type=Path, help="private keys, read by auth only (0600)")
    parser.add_argument("--public-jwks", type=Path, help="public keys, read by the gateways")
    parser.add_argument(
        "--kid",
        default=f"auth-{datetime.now(UTC):%Y%m%d}",
        help="key id of a newly generated key (default: auth-YYYYMMDD)",
    )
    args = parser.parse_args(argv)
    keys_given = (args.private_jwks is not None, args.public_jwks is not None)
    if keys_given in ((True, False), (False, True)):
        parser.error("--private-jwks and --public-jwks go together")
    if args.database is None and not any(keys_given):
        parser.error("nothing to do: give --database, the two key files, or all three")
    try:
        if args.database is not None:
            added = init_database(args.database)
            print(f"auth init: {args.database}: {added} seed users added")
        if args.private_jwks is not None:
            generated = init_keys(args.private_jwks, args.public_jwks, args.kid)
            key_state = f"generated key {args.kid!r}" if generated else "kept the existing key"
            print(f"auth init: {args.private_jwks}: {key_state}; public keys in {args.public_jwks}")
    except ValueError as exc:
        print(f"auth init: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
