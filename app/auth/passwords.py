"""Password hashing: argon2id for new hashes; the seed's `pbkdf2_sha256$...` hashes still verify.

Both functions are CPU-bound on purpose and release the GIL; call them from a worker thread (the
routes are plain `def`, so FastAPI runs them in its thread pool), never on the event loop.
"""

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1, the first of its equivalent
# minimum configurations. The low-memory variants (7-12 MiB, t=3..5) verify only ~10% faster here
# and trade away memory hardness; 46 MiB/t=1 is half as fast (bench/hash_speed.py).
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
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

# Hashing is bounded by CPU: more concurrent hashes than cores only adds latency and 19 MiB of
# memory each. Threads beyond this wait here, holding no memory.
_hash_slots = threading.BoundedSemaphore(os.cpu_count() or 1)


def hash_password(password: str) -> str:
    """Return an argon2id hash (PHC string, parameters and salt included) of `password`."""
    with _hash_slots:
        return _argon2.hash(password)


def verify_password(password: str, stored_hash: str) -> bool:
    """True if `password` matches `stored_hash` (argon2id, or the seed's PBKDF2 format)."""
    with _hash_slots:
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
