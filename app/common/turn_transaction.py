"""One transaction for a write turn's jobs (`WriterLock.one_transaction_a_turn`, app/common/db.py,
ENROLL_ONE_TRANSACTION_A_TURN): each job in a savepoint of its own, one COMMIT for the turn."""

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("app.common.db")
# A job run in a write turn: its answer-to-be, what it returned, what it raised.
Ran = tuple["asyncio.Future[Any]", object, BaseException | None]


class WriteOutsideItsTurn(RuntimeError):
    """A write transaction started on an event loop without the write turn (it would block the
    loop, and every request on it, in a blocking flock), or a write on a connection lent for
    reading. Write with `Database.write`."""


class TurnNotCommitted(RuntimeError):
    """The transaction a write turn's jobs shared did not commit (`one_transaction_a_turn`):
    nothing of any of them was kept, whatever each answered inside it."""


class TurnTransaction:
    """The one transaction of a write turn's jobs (`WriterLock.one_transaction_a_turn`): the
    first `immediate` of the turn begins it, each `immediate` is a savepoint in it (what a job
    raises rolls back its own savepoint only), and the turn commits it once, after its last job,
    before any job is answered. Through LiteFS a commit costs 1.6 ms, mostly waiting
    (docs/multihost.md): ten writes a commit made a writer nine times faster."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None  # the connection it was begun on
        self.savepoints = 0
        self.lost: BaseException | None = None  # why it ended before the turn's commit
        self.committed_actions: list[Callable[[], None]] = []

    @contextmanager
    def savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        if self.lost is not None:
            raise TurnNotCommitted(f"this turn's transaction was lost: {self.lost}")
        if self.conn is None:
            conn.execute("BEGIN IMMEDIATE")
            self.conn = conn
            conn.in_turn_transaction = True  # type: ignore[attr-defined]  # a db.Connection's
        elif conn is not self.conn:
            # A second connection would wait 30 s for the write lock the first one holds.
            raise WriteOutsideItsTurn("two write connections in one turn's transaction")
        self.savepoints += 1
        name = f"write_{self.savepoints}"
        conn.execute(f"SAVEPOINT {name}")
        conn.committed_actions = []  # type: ignore[attr-defined]  # a db.Connection's attribute
        try:
            yield conn
        except BaseException as exc:
            conn.committed_actions = None  # type: ignore[attr-defined]  # as above
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            else:  # SQLite rolled the whole transaction back (a full disk, an I/O error)
                self.lost = exc
            raise
        conn.execute(f"RELEASE {name}")
        self.committed_actions += conn.committed_actions  # type: ignore[attr-defined]  # idem
        conn.committed_actions = None  # type: ignore[attr-defined]  # as above

    def commit(self, ran: list[Ran], unsynced: set[str]) -> list[Ran]:
        """COMMIT once for the turn; `ran` as each job is to be answered: as it ran if the
        commit went through, else each one failed with TurnNotCommitted."""
        conn = self.conn
        if conn is None:
            return ran  # no job wrote
        conn.in_turn_transaction = False  # type: ignore[attr-defined]  # a db.Connection's
        failed: BaseException | None = self.lost
        if failed is None:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                failed = exc
        if failed is not None:
            with suppress(sqlite3.Error):  # the COMMIT's error says what happened
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            lost = TurnNotCommitted(
                f"the write turn's transaction did not commit ({failed}): nothing of its"
                f" {len(ran)} writes was kept"
            )
            return [(done, None, raised or lost) for done, _, raised in ran]
        unsynced.add(conn.wal_file)  # type: ignore[attr-defined]  # a db.Connection's attribute
        for action in self.committed_actions:
            try:
                action()
            except Exception:  # the turn must go on to let the lock go: the writes are kept
                log.exception("an action after a write turn's commit failed")
        return ran


# The transaction the current turn's jobs share, if the lock has one a turn.
turn_transaction: ContextVar[TurnTransaction | None] = ContextVar(
    "writer_turn_transaction", default=None
)
