"""Password hashes: the seed's PBKDF2 format verifies; new ones are argon2id at OWASP's minimum."""

import base64
import hashlib
import re
import secrets
import threading
import time

import pytest

from app.auth import passwords
from harness.seed import DEMO_PASSWORD


def seed_document_hash(password: str, iterations: int = 600_000) -> str:
    """The seed document's algorithm, written out independently of the service's code."""
    salt = secrets.token_hex(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(dk).decode().strip()}"


def test_a_seed_format_pbkdf2_hash_verifies():
    stored = seed_document_hash(DEMO_PASSWORD)

    assert passwords.verify_password(DEMO_PASSWORD, stored)
    assert not passwords.verify_password("registrar-day-2025", stored)


def test_pbkdf2_hashes_verify_at_whatever_iteration_count_they_record():
    stored = seed_document_hash("pässwörd ✓", iterations=1000)

    assert passwords.verify_password("pässwörd ✓", stored)
    assert not passwords.verify_password("passwort", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "pbkdf2_sha256$1000$salt",  # a field short
        "pbkdf2_sha256$many$salt$AAAA",  # iterations not a number
        "pbkdf2_sha256$0$salt$AAAA",  # no iterations
        "pbkdf2_sha256$1000$salt$not base64!",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "md5$abc",
        "",
    ],
)
def test_a_malformed_stored_hash_refuses_the_login_instead_of_crashing(stored):
    assert passwords.verify_password("anything", stored) is False


# OWASP Password Storage Cheat Sheet: argon2id configurations of an equal level of defense
# (memory KiB, iterations, parallelism 1). New hashes must meet one of them.
OWASP_MINIMUMS = [(46 * 1024, 1), (19 * 1024, 2), (12 * 1024, 3), (9 * 1024, 4), (7 * 1024, 5)]


def test_new_hashes_are_salted_argon2id_at_owasp_minimum_or_stronger():
    first = passwords.hash_password("correct-horse-battery")
    second = passwords.hash_password("correct-horse-battery")

    params = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", first)
    assert params, first
    memory_kib, time_cost, parallelism = map(int, params.groups())
    assert parallelism >= 1
    assert any(memory_kib >= m and time_cost >= t for m, t in OWASP_MINIMUMS), (
        memory_kib,
        time_cost,
    )
    assert first != second
    assert passwords.verify_password("correct-horse-battery", first)
    assert not passwords.verify_password("correct-horse-batterY", first)


def test_the_dummy_hash_uses_the_same_scheme_as_new_hashes():
    # Unknown users are timed against it: it must cost what a real account's check costs.
    new = passwords.hash_password("x" * 12)

    assert passwords.DUMMY_HASH.split("$")[:4] == new.split("$")[:4]


def test_hash_slots_are_shared_by_every_process_that_uses_the_directory(tmp_path):
    """Two users of one directory (as the three auth nodes of a host share theirs): with one
    slot, the second waits for the first, though each has its own semaphore and file."""
    first, second = passwords.HashSlots(1), passwords.HashSlots(1)
    first.share_with(tmp_path)
    second.share_with(tmp_path)
    order: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with first.taken():
            holding.set()
            time.sleep(0.3)
            order.append("first done")

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    with second.taken():
        order.append("second in")
    holder.join()

    assert order == ["first done", "second in"]
