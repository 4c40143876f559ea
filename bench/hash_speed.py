#!/usr/bin/env python3
"""Logins per second by password-hash scheme: how many password checks one core (and all cores)
completes per second, for the service's argon2id parameters next to the seed's PBKDF2-SHA256 at
600,000 iterations, plus the other argon2id settings OWASP rates equivalent.

    python bench/hash_speed.py [--seconds 3]

A login is one verify plus two RS256 signatures (~1 ms); the verify dominates.
"""

import argparse
import base64
import hashlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from argon2 import PasswordHasher, Type

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth import passwords  # noqa: E402

PASSWORD = "correct-horse-battery-staple"
SERVICE = (passwords.ARGON2_MEMORY_KIB, passwords.ARGON2_TIME_COST)
OWASP_ALTERNATIVES = [c for c in passwords.OWASP_ARGON2ID_MINIMUMS if c != SERVICE]  # KiB, t


def seed_format_hash(password: str, iterations: int = 600_000) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode().strip()}"


def rate(check: Callable[[], bool], seconds: float, threads: int) -> float:
    """Checks per second, running `check` on `threads` threads for about `seconds`."""
    assert check(), "the benchmark's password must verify"

    def worker() -> int:
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            check()
            done += 1
        return done

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: worker(), range(threads)))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    argon2_hash = passwords.hash_password(PASSWORD)
    pbkdf2_hash = seed_format_hash(PASSWORD)
    ours = (
        f"argon2id m={passwords.ARGON2_MEMORY_KIB // 1024} MiB, t={passwords.ARGON2_TIME_COST}, "
        f"p={passwords.ARGON2_PARALLELISM} (service)"
    )
    rows = [
        (ours, lambda: passwords.verify_password(PASSWORD, argon2_hash)),
        (
            "pbkdf2_sha256 600,000 iterations (seed)",
            lambda: passwords.verify_password(PASSWORD, pbkdf2_hash),
        ),
    ]
    for memory_kib, time_cost in OWASP_ALTERNATIVES:
        hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID
        )
        other = hasher.hash(PASSWORD)
        rows.append(
            (
                f"argon2id m={memory_kib // 1024} MiB, t={time_cost}, p=1 (OWASP equivalent)",
                lambda hasher=hasher, other=other: hasher.verify(other, PASSWORD),
            )
        )

    python = sys.version.split()[0]
    print(f"logins/s (password verifications per second), {cores} cores, Python {python}")
    print(f"{'scheme':<52} {'1 core':>8} {f'{cores} cores':>9} {'ms/verify':>10}")
    for name, check in rows:
        single = rate(check, args.seconds, 1)
        every = rate(check, args.seconds, cores)
        print(f"{name:<52} {single:8.1f} {every:9.1f} {1000 / single:10.1f}")


if __name__ == "__main__":
    main()
