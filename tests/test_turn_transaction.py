"""One transaction a write turn (app/common/db.py `_TurnTransaction`, the setting
ENROLL_ONE_TRANSACTION_A_TURN): the writes a process runs back to back in one turn share one
BEGIN IMMEDIATE ... COMMIT, each in a savepoint of its own. A write that fails undoes its own
savepoint only; a COMMIT that fails fails every write of the turn, and says so. The race outcome
of SPEC §2 with it on: tests/enrollment/test_race.py runs every race in both modes."""

import asyncio
import fcntl
import os
import sqlite3

from app.common.db import Database, connect, on_commit
from app.common.turn_transaction import TurnNotCommitted


def turn_database(tmp_path, schema: str) -> tuple[Database, list[str]]:
    """A Database of one transaction a turn on a new file, and the statements its writer runs."""
    path = tmp_path / "x.db"
    connect(path).executescript(schema)
    db = Database(path, writer_lock_file=tmp_path / "x.db.writer-lock", one_transaction_a_turn=True)
    statements: list[str] = []
    db.writers._idle[-1].set_trace_callback(statements.append)  # its one writer connection
    return db, statements


def rows(db: Database, table: str) -> list[int]:
    return db.read(lambda c: [r[0] for r in c.execute(f"SELECT n FROM {table} ORDER BY n")])


def test_a_write_that_fails_undoes_only_its_savepoint_and_the_others_of_its_turn_commit(tmp_path):
    db, statements = turn_database(tmp_path, "CREATE TABLE t (n INTEGER);")
    counted: list[int] = []

    def insert(tx: sqlite3.Connection, n: int) -> int:
        tx.execute("INSERT INTO t VALUES (?)", (n,))
        on_commit(tx, lambda: counted.append(n))
        if n == 2:
            raise ValueError("seat 2 is gone")
        return n

    async def turn() -> list:
        return await asyncio.gather(
            *(db.write(insert, n) for n in (1, 2, 3)), return_exceptions=True
        )

    results = asyncio.run(turn())
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ValueError) and str(results[1]) == "seat 2 is gone"
    assert rows(db, "t") == [1, 3]
    assert counted == [1, 3]  # what counts a change counts only those kept, once committed
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1
    assert "ROLLBACK TO write_2" in statements  # the failed write's own savepoint
    assert "ROLLBACK" not in statements
    assert not db.writers._idle[-1].in_transaction  # the turn ended what it began


def test_a_turn_whose_commit_fails_fails_every_write_of_it_and_the_next_turn_commits(tmp_path):
    # A deferred foreign key is checked at COMMIT: a savepoint's RELEASE lets it through.
    db, _ = turn_database(tmp_path, """
        CREATE TABLE t (n INTEGER);
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
    """)  # fmt: skip
    counted: list[str] = []

    def insert(tx: sqlite3.Connection, n: int) -> int:
        tx.execute("INSERT INTO t VALUES (?)", (n,))
        on_commit(tx, lambda: counted.append("counted"))
        return n

    def orphan(tx: sqlite3.Connection) -> str:
        tx.execute("INSERT INTO child VALUES (99)")
        return "accepted inside the turn"

    async def turn() -> list:
        writes = (db.write(insert, 1), db.write(orphan), db.write(insert, 3))
        return await asyncio.gather(*writes, return_exceptions=True)

    results = asyncio.run(turn())
    assert [type(r) for r in results] == [TurnNotCommitted] * 3
    assert "FOREIGN KEY constraint failed" in str(results[0])
    assert "nothing of its 3 writes was kept" in str(results[0])
    assert rows(db, "t") == [] and counted == []
    assert asyncio.run(db.write(insert, 4)) == 4  # the failed turn left no transaction open
    assert rows(db, "t") == [4] and counted == ["counted"]


def test_off_by_default_each_write_is_its_own_transaction(tmp_path):
    path = tmp_path / "x.db"
    connect(path).execute("CREATE TABLE t (n INTEGER)")
    db = Database(path, writer_lock_file=tmp_path / "x.db.writer-lock")
    statements: list[str] = []
    db.writers._idle[-1].set_trace_callback(statements.append)

    async def turn() -> None:
        insert = lambda tx, n: tx.execute("INSERT INTO t VALUES (?)", (n,))  # noqa: E731
        await asyncio.gather(*(db.write(insert, n) for n in range(3)))

    asyncio.run(turn())
    assert statements.count("BEGIN IMMEDIATE") == 3 and statements.count("COMMIT") == 3


def test_an_action_after_the_commit_that_fails_is_logged_and_the_turn_lets_the_lock_go(
    tmp_path, caplog
):
    """The turn runs what counts its changes after its COMMIT, with the lock file held: one of
    them failing must not keep every instance's writes waiting. The writes are kept."""
    db, _ = turn_database(tmp_path, "CREATE TABLE t (n INTEGER);")

    def boom() -> None:
        raise ValueError("a counter broke")

    def insert(tx: sqlite3.Connection, n: int) -> int:
        tx.execute("INSERT INTO t VALUES (?)", (n,))
        on_commit(tx, boom)
        return n

    async def turn() -> list:
        return await asyncio.gather(db.write(insert, 1), db.write(insert, 2))

    assert asyncio.run(turn()) == [1, 2]
    assert rows(db, "t") == [1, 2]
    assert "an action after a write turn's commit failed" in caplog.text
    fd = os.open(tmp_path / "x.db.writer-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises BlockingIOError if held
    finally:
        os.close(fd)
