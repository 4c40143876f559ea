"""The bench's rushes send an Idempotency-Key on every write (bench/rush.py `keyed`), as the web
app does, and can leave them out, so that `./bin/bench` can put the keys' cost side by side."""

import uuid

from bench.rush import keyed

STUDENT = {"Authorization": "Bearer t"}


def test_every_write_gets_a_fresh_key_and_the_students_headers_stay_as_they_were():
    sent = [keyed(STUDENT, method, keys=True) for method in ("POST", "DELETE") * 3]

    keys = [headers["Idempotency-Key"] for headers in sent]
    assert len(set(keys)) == 6
    assert all(uuid.UUID(key).version == 4 for key in keys)
    assert all(headers["Authorization"] == "Bearer t" for headers in sent)
    assert STUDENT == {"Authorization": "Bearer t"}  # the token's dict, renewed in place, is kept


def test_a_read_and_a_rush_without_keys_send_none():
    assert keyed(STUDENT, "GET", keys=True) is STUDENT
    assert keyed(STUDENT, "POST", keys=False) is STUDENT
