"""What a power cut can take back: an enrollment committed more than `checkpoint_seconds` ago
is in the database file itself, not only in its WAL (app/common/db.py `Checkpointer`)."""

import shutil
import sqlite3
import time

from tests.enrollment.helpers import LIAM


def enrolled_in_the_file_alone(api, tmp_path, user_id: int, section_id: int) -> bool:
    """What the database file says without its WAL, as after a power cut that lost the WAL's
    unsynced end (the copy has no -wal file beside it)."""
    alone = tmp_path / "file-alone.db"
    shutil.copyfile(api.db_path, alone)
    conn = sqlite3.connect(alone)
    try:
        row = conn.execute(
            "SELECT status FROM enrollments WHERE user_id = ? AND section_id = ?",
            (user_id, section_id),
        ).fetchone()
    finally:
        conn.close()
    return row is not None and row[0] == "enrolled"


def test_a_committed_enrollment_reaches_the_database_file_within_the_interval(api, tmp_path):
    reply = api.as_(LIAM).post(f"/users/{LIAM[0]}/enrollments", json={"section_id": 4})
    assert reply.status_code == 201 and reply.json()["status"] == "enrolled"
    deadline = time.monotonic() + 5  # the default interval is 0.25 s
    while not enrolled_in_the_file_alone(api, tmp_path, LIAM[0], 4):
        assert time.monotonic() < deadline, "the enrollment is still only in the WAL after 5 s"
        time.sleep(0.05)
