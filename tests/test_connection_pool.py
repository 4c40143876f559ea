"""The connection pool (app/common/db.py `ConnectionPool`) lends the connection given back last,
whose caches are warm, and never lends one to two requests at once."""

from app.common.db import ConnectionPool


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
