"""The connection pool (app/common/db.py `ConnectionPool`) lends the connection given back last,
whose caches are warm, and never lends one to two requests at once."""

import sqlite3
import threading

from app.common.db import ConnectionPool, connect


def test_the_connection_given_back_last_is_lent_first(tmp_path):
    pool = ConnectionPool(tmp_path / "x.db")
    first, second, third = pool.take(), pool.take(), pool.take()
    assert len({id(first), id(second), id(third)}) == 3, "one connection lent twice at once"
    for conn in (first, second, third):
        pool.give_back(conn)
    assert pool.take() is third
    assert pool.take() is second


def test_a_connection_comes_back_without_its_open_transaction(tmp_path):
    pool = ConnectionPool(tmp_path / "x.db")
    conn = pool.take()
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1)")
    pool.give_back(conn)
    again = pool.take()
    assert again is conn and not again.in_transaction
    assert again.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


def test_opening_a_file_another_connection_is_writing_in_rollback_mode_waits_for_it(tmp_path):
    """A file still in rollback-journal mode (made by another tool), written by another
    connection as this one opens it: the switch to WAL waits for that write to end, where SQLite
    alone answers "database is locked" at once."""
    path = tmp_path / "old.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    ends = threading.Timer(0.3, other.execute, ["COMMIT"])
    ends.start()
    try:
        conn = connect(path)
    finally:
        ends.join()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [tuple(row) for row in conn.execute("SELECT n FROM t")] == [(1,)]
