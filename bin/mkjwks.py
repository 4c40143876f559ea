#!/usr/bin/env python3
"""Print a JWKS of new RSA-2048 RS256 signing keys, private parts included, one per KEY_ID.

    python bin/mkjwks.py KEY_ID... > private.jwks.json

Keep the output private (chmod 600); publish only the public half (the auth service serves it at
/.well-known/jwks.json, and `python -m app.auth.init_db` writes it for the gateways).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.keys import generate_jwks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mkjwks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("key_ids", nargs="+", metavar="KEY_ID", help="the `kid` of each key")
    args = parser.parse_args(argv)
    try:
        jwks = generate_jwks(args.key_ids)
    except ValueError as exc:
        parser.error(str(exc))
    json.dump(jwks, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
