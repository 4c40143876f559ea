"""SQLite connections for both services: WAL, busy timeout, foreign keys, explicit transactions."""

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection in autocommit mode; transactions are always explicit (see `immediate`)."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        # WAL lets readers in the three instances run while one writer commits.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


# SQLite admits one writer at a time anyway. Queueing this process's writers on a lock first
# means at most one thread per process polls SQLite's busy handler (which sleeps up to 100 ms
# between tries), instead of dozens: same safety, far less waiting under a rush.
_writer = threading.Lock()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a read-then-write as one BEGIN IMMEDIATE transaction: the write lock is taken up front,
    so no other process can change what we read before we write."""
    with _writer:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run several reads against one consistent snapshot of the database."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def apply_schema(conn: sqlite3.Connection, schema_sql: str) -> None:
    """Create tables from a schema file's text (idempotent: the schema uses IF NOT EXISTS)."""
    conn.executescript(schema_sql)


class ConnectionPool:
    """Connections reused across requests, each lent to one request at a time.

    FastAPI may run a dependency and its endpoint on different worker threads, so a
    thread-local connection could be shared by two requests at once; a pool cannot.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = connect(self.path, readonly=self.readonly)
        try:
            yield conn
        finally:
            if conn.in_transaction:  # never hand a half-finished transaction to the next request
                conn.execute("ROLLBACK")
            self._idle.put(conn)


class WrongSchema(RuntimeError):
    """The database file is not this service's, or not at the schema version this code knows."""


def check_schema(path: str | Path, *, application_id: int, user_version: int) -> None:
    """Refuse a database that is missing, another service's, or at another schema version."""
    if not Path(path).is_file():
        raise WrongSchema(f"database {path} does not exist; run bin/init.sh first")
    conn = connect(path, readonly=True)
    try:
        found_app = conn.execute("PRAGMA application_id").fetchone()[0]
        found_version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise WrongSchema(f"{path} is not a SQLite database ({exc})") from exc
    finally:
        conn.close()
    if found_app != application_id:
        raise WrongSchema(
            f"{path} is not this service's database (application_id {found_app},"
            f" expected {application_id}); point the setting at the right file or run bin/init.sh"
        )
    if found_version != user_version:
        raise WrongSchema(
            f"{path} has schema version {found_version}, this code needs {user_version};"
            " recreate it with bin/init.sh"
        )
