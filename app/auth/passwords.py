"""Password hashing: argon2id for new hashes; the seed's `pbkdf2_sha256$...` hashes still verify.

Both functions are CPU-bound on purpose and release the GIL; call them from a worker thread (the
routes are plain `def`, so FastAPI runs them in its thread pool), never on the event loop.
"""

import base64
import fcntl
import hashlib
import hmac
import logging
import os
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

# OWASP Password Storage Cheat Sheet, argon2id: five configurations that "provide an equal level
# of defense", trading CPU for memory (KiB, iterations; parallelism 1).
OWASP_ARGON2ID_MINIMUMS = (
    (46 * 1024, 1),
    (19 * 1024, 2),
    (12 * 1024, 3),
    (9 * 1024, 4),
    (7 * 1024, 5),
)
# New hashes use m=7 MiB, t=5: the fastest of them on this 2-core machine (22.6 ms a verify,
# against 30.5 ms for 19 MiB/t=2 and 82.8 ms for 46 MiB/t=1; python bench/hash_speed.py), so the
# most logins a second at the same defense, and the least memory per hash in flight. Hashes made
# with another configuration carry it in their PHC string and verify as they are.
ARGON2_MEMORY_KIB, ARGON2_TIME_COST = OWASP_ARGON2ID_MINIMUMS[-1]
ARGON2_PARALLELISM = 1

PBKDF2_PREFIX = "pbkdf2_sha256$"
ARGON2ID_PREFIX = "$argon2id$"

_argon2 = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


class HashSlots:
    """At most one hash per core at a time. Hashing is bounded by CPU and memory bandwidth: more
    concurrent hashes than cores only adds latency and a hash's memory each, and past the CPU
    cache it costs throughput too (60 verifies on 2 cores: 63/s in 2 processes, 57/s in 6).

    Within a process, threads beyond the limit wait on a semaphore. Across processes (the three
    auth nodes of one host), once `share_with(directory)` names a directory they all use, a hash
    also holds an flock on one of `count` slot files there; each acquisition opens its own file
    description, so threads of one process exclude each other as well."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._local = threading.BoundedSemaphore(count)
        self._paths: list[str] = []

    def share_with(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._paths = [str(directory / f"hash-slot-{i}.lock") for i in range(self.count)]

    @contextmanager
    def taken(self) -> Iterator[None]:
        with self._local:
            if not self._paths:
                yield
                return
            fd = self._take_slot()
            try:
                yield
            finally:
                os.close(fd)  # closing the description releases its flock

    def _take_slot(self) -> int:
        for path in self._paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        # Every slot is busy: wait (in this worker thread) on one; the kernel wakes us.
        fd = os.open(random.choice(self._paths), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd


hash_slots = HashSlots(os.cpu_count() or 1)


def hash_password(password: str) -> str:
    """Return an argon2id hash (PHC string, parameters and salt included) of `password`."""
    with hash_slots.taken():
        return _argon2.hash(password)


def verify_password(password: str, stored_hash: str) -> bool:
    """True if `password` matches `stored_hash` (argon2id, or the seed's PBKDF2 format)."""
    with hash_slots.taken():
        if stored_hash.startswith(ARGON2ID_PREFIX):
            return _verify_argon2(password, stored_hash)
        if stored_hash.startswith(PBKDF2_PREFIX):
            return _verify_pbkdf2(password, stored_hash)
    log.error("stored password hash in an unknown format; login refused")
    return False


def _verify_argon2(password: str, stored_hash: str) -> bool:
    try:
        return _argon2.verify(stored_hash, password)
    except VerificationError:
        return False
    except InvalidHashError:
        log.error("malformed argon2id hash in the database; login refused")
        return False


def _verify_pbkdf2(password: str, stored_hash: str) -> bool:
    """The seed's format: pbkdf2_sha256$<iterations>$<salt, used as text>$<base64 of the digest>."""
    try:
        _, iterations, salt, digest_b64 = stored_hash.split("$")
        expected = base64.b64decode(digest_b64, validate=True)
        rounds = int(iterations)
        if rounds < 1:
            raise ValueError("iterations must be positive")
    except ValueError:
        log.error("malformed pbkdf2_sha256 hash in the database; login refused")
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), rounds)
    return hmac.compare_digest(actual, expected)


# Verified in place of a real hash when the username is unknown, so that answer takes as long as a
# wrong password for an account hashed with the current scheme.
DUMMY_HASH = hash_password(secrets.token_urlsafe(24))
