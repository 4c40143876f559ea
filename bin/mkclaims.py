#!/usr/bin/env python3
"""Print the claims of a token for USERNAME (user id USER_ID) with ROLEs, as the auth service
issues them: iss, aud, sub, preferred_username, given_name, family_name, roles, token_use, iat,
exp, jti. The names are the seed person's (share/seed/people.json) unless given.

    python bin/mkclaims.py ajohnson 9 student [--given-name Ava --family-name Johnson]

Sign the output with a key from mkjwks.py (RS256, header `kid`) to get a test token.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.settings import Settings  # noqa: E402
from app.auth.tokens import build_claims  # noqa: E402
from app.common.identity import ROLES  # noqa: E402

SEED_PEOPLE = {
    p["username"]: p
    for p in json.loads(
        (Path(__file__).resolve().parents[1] / "share/seed/people.json").read_text()
    )
}


def _default(name: str) -> str:
    # The service's own defaults, unless AUTH_<NAME> says otherwise, as for the service itself.
    return os.environ.get(f"AUTH_{name.upper()}", Settings.model_fields[name].default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mkclaims.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("username")
    parser.add_argument("user_id", type=int)
    parser.add_argument("roles", nargs="+", metavar="ROLE", choices=ROLES)
    parser.add_argument("--issuer", default=_default("issuer"))
    parser.add_argument("--audience", default=_default("audience"), help="the access audience")
    parser.add_argument(
        "--ttl", type=int, default=Settings.model_fields["access_ttl_seconds"].default
    )
    parser.add_argument("--given-name", help="default: the seed person's first name, else ''")
    parser.add_argument("--family-name", help="default: the seed person's last name, else ''")
    parser.add_argument("--refresh", action="store_true", help="claims of a refresh token")
    args = parser.parse_args(argv)
    if args.user_id < 1:
        parser.error("USER_ID must be a positive integer")
    if len(set(args.roles)) != len(args.roles):
        parser.error("roles must not repeat")
    seed = SEED_PEOPLE.get(args.username, {})
    claims = build_claims(
        user_id=args.user_id,
        username=args.username,
        given_name=seed.get("first_name", "") if args.given_name is None else args.given_name,
        family_name=seed.get("last_name", "") if args.family_name is None else args.family_name,
        roles=args.roles,
        issuer=args.issuer,
        audience=args.audience,
        ttl_seconds=args.ttl,
        token_use="refresh" if args.refresh else "access",
    )
    json.dump(claims, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
