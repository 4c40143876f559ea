#!/usr/bin/env python3
"""Does a failed sign-in tell whether the account exists? Times the 401 for an unknown username
against the 401 for a known one with a wrong password, in the same run, alternating, and prints
the ratio of the medians (1.0: indistinguishable; ~0.05 without the dummy hash).

    python bench/login_timing.py [--rounds 25]

The auth app runs in this process (FastAPI's TestClient) on a fresh database in a temporary
directory, with the abuse limits out of reach. tests/auth/test_login.py checks the mechanism (the
dummy hash is verified, at a new hash's cost); this measures what it buys.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth.init_db import init_database, init_keys  # noqa: E402
from app.auth.main import create_app  # noqa: E402
from app.auth.settings import Settings  # noqa: E402

KNOWN = {"username": "timing-known", "password": "correct-horse-battery"}
OUT_OF_REACH = 10**9


def seconds_of(client: TestClient, username: str) -> float:
    start = time.perf_counter()
    reply = client.post("/login", json={"username": username, "password": "wrong-password-here"})
    took = time.perf_counter() - start
    if reply.status_code != 401:
        raise SystemExit(f"login of {username!r}: {reply.status_code} {reply.text}, not 401")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25, help="401s of each kind (default 25)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="login-timing-") as root:
        database, private = Path(root, "auth.db"), Path(root, "auth", "private.jwks.json")
        init_database(database)
        init_keys(private, Path(root, "jwks.json"), "bench-key")
        settings = Settings(
            database=database,
            private_jwks=private,
            login_failures_per_username=OUT_OF_REACH,
            login_failures_per_address=OUT_OF_REACH,
            registrations_per_address=OUT_OF_REACH,
        )
        with TestClient(create_app(settings)) as client:
            body = KNOWN | {"first_name": "Tim", "last_name": "Ing"}
            made = client.post("/register", json=body)
            if made.status_code != 201:
                raise SystemExit(f"register: {made.status_code} {made.text}")
            seconds_of(client, KNOWN["username"])  # warm up
            known, unknown = [], []
            for _ in range(args.rounds):  # alternating, so drift on a noisy machine hits both
                known.append(seconds_of(client, KNOWN["username"]))
                unknown.append(seconds_of(client, "nobody-by-this-name"))
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"wrong password, known user: median {k * 1000:.1f} ms ({args.rounds} logins)")
    print(f"unknown user:               median {u * 1000:.1f} ms ({args.rounds} logins)")
    print(f"unknown / known: {u / k:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
