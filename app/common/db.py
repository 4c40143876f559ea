"""SQLite connections for both services: WAL, busy timeout, foreign keys, explicit transactions."""

import asyncio
import collections
import contextvars
import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from app.common import idempotency
from app.common.errors import database_busy
from app.common.observe import WRITER_LOCK_WAIT
from app.common.turn_transaction import (
    Ran,
    TurnTransaction,
    WriteOutsideItsTurn,
    turn_transaction,
)

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 30_000
BATCH_SECONDS = 0.010  # the longest one process keeps the turn while others may wait
T = TypeVar("T")
P = ParamSpec("P")


class WriterLock:
    """Queues writers before they ask SQLite for its write lock: jobs of an event loop in its
    queue (`run`), threads of this process on a mutex (`held`), processes on an flock of a file
    beside the database.

    SQLite admits one writer at a time anyway, but a writer that finds the database locked
    sleeps in SQLite's busy handler (1, 2, 5 ... up to 100 ms between tries), so under a rush the
    unlucky ones wait far longer than the lock is held. The kernel wakes the next flock waiter the
    moment the holder lets go. Safety does not depend on this lock: BEGIN IMMEDIATE still takes
    SQLite's own lock, and the busy timeout still covers any writer that does not queue here.
    """

    _by_path: dict[str, "WriterLock"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path | None) -> None:
        self._mutex = threading.Lock()
        # One queue of write jobs per event loop (tests run several loops in one process).
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = (
            weakref.WeakKeyDictionary()
        )
        self._fd = None if path is None else os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # One transaction a turn (`Database(one_transaction_a_turn=True)`): the jobs of a turn
        # share one BEGIN IMMEDIATE ... COMMIT, each in a savepoint of its own.
        self.one_transaction_a_turn = False

    @classmethod
    def for_file(cls, path: Path | None) -> "WriterLock":
        """One lock per lock file per process (None: this process's threads only)."""
        key = str(path)
        with cls._registry_lock:
            if key not in cls._by_path:
                cls._by_path[key] = cls(path)
            return cls._by_path[key]

    @contextmanager
    def held(self) -> Iterator[None]:
        asked = time.perf_counter()
        with self._mutex:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            WRITER_LOCK_WAIT.observe(time.perf_counter() - asked)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def run(self, job: Callable[[], T]) -> T:
        """Run `job`, plain code that writes, in a write turn, from an event loop; return what it
        returns or raise what it raised.

        Jobs queue per process. One task per event loop takes the turn for them: it waits for
        the flock without blocking the loop, then runs the jobs queued by then back to back
        (for at most BATCH_SECONDS and one job more), and lets the turn go. The lock file is
        thus held only while writes run, never while a woken task waits for the loop to get to
        it. With a turn per request, the writer-lock wait p99 was 2.5 s under the closed rush,
        where a write transaction takes about 0.3 ms of CPU. A job that was cancelled before its
        turn (its client went away) is not run."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch()
        done: asyncio.Future[T] = loop.create_future()
        batch.jobs.append((job, done, contextvars.copy_context(), time.perf_counter()))
        if batch.drainer is None:
            batch.drainer = loop.create_task(self._drain(batch))
        return await done

    async def _drain(self, batch: "_Batch") -> None:
        try:
            while batch.jobs:
                ran: list[Ran] = []
                unsynced: set[str] = set()  # the WAL files this turn's jobs committed to
                shared = TurnTransaction() if self.one_transaction_a_turn else None
                try:
                    if self._fd is not None:
                        await self._flock_polling(self._fd)
                    ends = time.perf_counter() + BATCH_SECONDS
                    while batch.jobs and time.perf_counter() < ends:
                        job, done, context, asked = batch.jobs.popleft()
                        if done.cancelled():
                            continue
                        WRITER_LOCK_WAIT.observe(time.perf_counter() - asked)
                        try:
                            result = context.run(_in_turn, self, unsynced, shared, job)
                            ran.append((done, result, None))
                        except BaseException as exc:  # handed to the job's own task
                            ran.append((done, None, exc))
                finally:
                    # Also when cancelled: what ran commits (or fails) before the lock goes.
                    if shared is not None:
                        ran = shared.commit(ran, unsynced)
                    # Also when cancelled while waiting: never leave the lock held (unlocking
                    # a lock not held is a no-op).
                    if self._fd is not None:
                        fcntl.flock(self._fd, fcntl.LOCK_UN)
                    # Then the turn's commits go to disk, once for them all, and only then is
                    # any job answered (also when cancelled: a job that ran was committed).
                    synced: OSError | None = None
                    try:
                        _sync(unsynced)
                    except OSError as exc:
                        synced = exc
                    for done, result, raised in ran:
                        if done.done():
                            continue
                        if raised is None and synced is not None:
                            raised = CommitNotOnDisk(f"a commit may not be on disk: {synced}")
                        if raised is None:
                            done.set_result(result)
                        else:
                            done.set_exception(raised)
        except BaseException as exc:
            # The loop is closing (or the lock file failed): no job may wait for ever.
            while batch.jobs:
                _, done, _, _ = batch.jobs.popleft()
                if done.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    done.cancel()
                else:
                    done.set_exception(exc)
            raise
        finally:
            batch.drainer = None

    async def _flock_polling(self, fd: int) -> None:
        """Take the flock without blocking the loop: try, and sleep a little between tries
        (one poller per process: its event loop's drainer).

        Measured against waiting in a worker thread (a blocking flock, woken by the kernel): the
        thread hand-off cost more CPU than the polling, 2,190 vs 2,320 rush ops/s and p99 250 vs
        220 ms. Polling is not FIFO across processes; the 2 ms cap bounds how long a waiting
        process sleeps between tries."""
        pause = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.002)


# The WriterLock whose turn the current task holds (so `immediate` does not queue again).
_turn_held: ContextVar[WriterLock | None] = ContextVar("writer_turn_held", default=None)


class _Batch:
    """One event loop's queue of write jobs, and the task running them (if any)."""

    def __init__(self) -> None:
        # (the job, its answer, the context it runs in, when it was queued)
        self.jobs: collections.deque[
            tuple[Callable[[], Any], asyncio.Future[Any], contextvars.Context, float]
        ] = collections.deque()
        self.drainer: asyncio.Task[None] | None = None


# The WAL files written by the commits of the current turn, synced at its end (`WriterLock.run`).
_turn_commits: ContextVar[set[str] | None] = ContextVar("writer_turn_commits", default=None)


def _in_turn(
    lock: WriterLock, unsynced: set[str], shared: "TurnTransaction | None", job: Callable[[], T]
) -> T:
    _turn_held.set(lock)  # in the job's own copy of its task's context
    _turn_commits.set(unsynced)
    turn_transaction.set(shared)
    return job()


def _sync(wal_files: set[str]) -> None:
    """Sync each WAL file: what was committed to it is then on disk. fdatasync, as SQLite's own
    sync on Linux: the data and the file's size, not its times. A file that is not there was
    checkpointed into the database and removed by SQLite, which synced the database first."""
    for path in wal_files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)


def sync_committed(conn: sqlite3.Connection) -> None:
    """Put what `conn` has committed on disk, as the write turn does for the services: its WAL
    synced, after the write lock was let go (so other writers do not wait for the disk)."""
    _sync({conn.wal_file})  # type: ignore[attr-defined]  # a db.Connection's attribute


class WriteOnReplica(RuntimeError):
    """A write asked of a `Database` that is a read replica (`relays_writes`): nothing was
    changed, and the request is to be made by the primary (app/enrollment/relay.py relays it)."""


class CommitNotOnDisk(OSError):
    """A write job committed, but the WAL could not be synced: a power cut could undo it."""


class Connection(sqlite3.Connection):
    """A sqlite3 connection that knows which writer queue it joins."""

    writer_lock: WriterLock
    wal_file: str
    # What runs once the current `immediate` transaction commits (None outside one).
    committed_actions: list[Callable[[], None]] | None
    # Whether it holds the transaction a write turn's jobs share (`TurnTransaction`).
    in_turn_transaction: bool


def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    query_only: bool = False,
    writer_lock_file: Path | None = None,
) -> sqlite3.Connection:
    """Open a connection in autocommit mode; transactions are always explicit (see `immediate`).
    Processes that share a database for writing pass the same `writer_lock_file`. A `query_only`
    connection refuses every change (SQLite's `PRAGMA query_only`): `Database.read` lends those."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            factory=Connection,
        )
    else:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, factory=Connection
        )
    conn.writer_lock = WriterLock.for_file(writer_lock_file)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        # WAL lets readers in the three instances run while one writer commits.
        _switch_to_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    if query_only:
        conn.execute("PRAGMA query_only = ON")
    conn.wal_file = f"{path}-wal"
    conn.in_turn_transaction = False
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, retried up to the busy timeout: SQLite refuses to switch a
    file still in rollback mode at once, without its busy handler, while another connection
    holds a lock (throttle.create_schema in six threads: 17 failed runs of 300)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not database_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a read-then-write as one BEGIN IMMEDIATE transaction: the write lock is taken up front,
    so no other process can change what we read before we write. In a thread, the writer queue
    is joined here (a blocking wait); on an event loop the caller must hold the write turn
    already (`Database.write` runs it there), or this raises WriteOutsideItsTurn rather than
    block the loop."""
    lock = getattr(conn, "writer_lock", None) or WriterLock.for_file(None)
    has_turn = _turn_held.get() is lock
    if not has_turn and _on_event_loop():
        raise WriteOutsideItsTurn(
            "a write transaction on the event loop without the write turn: write with"
            " Database.write"
        )
    shared = turn_transaction.get() if has_turn else None
    if shared is not None:
        with shared.savepoint(conn):
            yield conn
        return
    with nullcontext() if has_turn else lock.held():
        conn.execute("BEGIN IMMEDIATE")
        # `conn` is a db.Connection (connect's factory), held as sqlite3.Connection by callers.
        conn.committed_actions = []  # type: ignore[attr-defined]  # a db.Connection's attribute
        try:
            yield conn
        except BaseException:
            conn.committed_actions = None  # type: ignore[attr-defined]  # as above
            # SQLite has rolled back by itself after some errors (a full disk, an I/O error);
            # a second ROLLBACK would raise and hide the error that says what happened.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if has_turn and (unsynced := _turn_commits.get()) is not None:
            unsynced.add(conn.wal_file)  # type: ignore[attr-defined]  # as above
    actions, conn.committed_actions = conn.committed_actions, None  # type: ignore[attr-defined]  # idem
    for action in actions:
        action()


def on_commit(conn: sqlite3.Connection, action: Callable[[], None]) -> None:
    """Run `action` once the current `immediate` transaction has committed (never if it rolls
    back): what counts a change (a metric) must not count one that did not happen. Outside an
    `immediate` transaction, at once."""
    pending = getattr(conn, "committed_actions", None)  # a list only inside `immediate`
    if pending is not None:
        pending.append(action)
    else:
        action()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run several reads against one consistent snapshot of the database."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, steps: dict[int, list[str]], *, first_table: str) -> None:
    """Bring an existing database of an older schema version (PRAGMA user_version) to the
    current one, in place, in one transaction: `steps` maps each version to the statements that
    make it from the one before. A database without `first_table` is new: its schema file makes
    it whole, and nothing is run."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (first_table,)
    ).fetchone()
    if exists is None:
        return
    with immediate(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in sorted(steps):
            if version < target:
                for statement in steps[target]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")


def where_given(filters: dict[str, object]) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause and its parameters for the `filters` ("column = ?" -> value) that were
    given: those whose value is not None, joined by AND ("1" when none was)."""
    given = {clause: value for clause, value in filters.items() if value is not None}
    return " AND ".join(given) or "1", tuple(given.values())


def apply_schema(conn: sqlite3.Connection, schema_sql: str) -> None:
    """Create tables from a schema file's text (idempotent: the schema uses IF NOT EXISTS)."""
    conn.executescript(schema_sql)


class ConnectionPool:
    """Connections reused across requests, each lent to one request at a time.

    FastAPI may run a dependency and its endpoint on different worker threads, so a
    thread-local connection could be shared by two requests at once; a pool cannot.

    The connection lent is the one given back last: a rush leaves dozens idle per instance, and
    handed out in turn, each request got the one least recently used, its caches the coldest.
    After the bench put the database back between rushes, every pooled connection had to read
    the schema again on its first use: the open loop after a closed rush ran p99 235-458 ms in
    its first second, against 31-43 ms lending the last given back (python -m bench.run's
    rushes, 600 requests/s).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        query_only: bool = False,
        writer_lock_file: Path | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.query_only = query_only
        self.writer_lock_file = writer_lock_file
        self.on_connect = on_connect  # run on each connection it opens, before its first use
        # The queue of writers its connections join (`WriterLock.run` for a job of its own).
        self.writer_lock = WriterLock.for_file(writer_lock_file)
        self._idle: collections.deque[sqlite3.Connection] = collections.deque()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self.take()
        try:
            yield conn
        finally:
            self.give_back(conn)

    def take(self) -> sqlite3.Connection:
        """An idle connection, or a new one; `give_back` it when done."""
        try:
            return self._idle.pop()
        except IndexError:
            conn = connect(
                self.path,
                readonly=self.readonly,
                query_only=self.query_only,
                writer_lock_file=self.writer_lock_file,
            )
            if self.on_connect is not None:
                self.on_connect(conn)
            return conn

    def give_back(self, conn: sqlite3.Connection) -> None:
        # Never hand a half-finished transaction to the next request; the one a write turn's
        # jobs share is the turn's own to end (`TurnTransaction.commit`).
        if conn.in_transaction and not getattr(conn, "in_turn_transaction", False):
            conn.execute("ROLLBACK")
        self._idle.append(conn)


class Database:
    """One SQLite file as a service process uses it from its event loop, in two verbs (as
    datasette's `Database.execute_fn` and `execute_write_fn`):

        rows = db.read(queries.list_courses, after=after, limit=limit)
        seat = await db.write(service.enroll, who, user_id, body)

    `read` runs `fn(conn, ...)` on a pooled connection that cannot change anything (query-only).
    `write` runs `fn(tx, ...)` as one BEGIN IMMEDIATE transaction, in this process's write turn
    (`WriterLock.run`: queued without blocking the loop, run back to back with the writes queued
    meanwhile, while the lock file shared with the other processes is held), and returns what
    `fn` returned once the turn's commits are on disk (group commit); what `fn` raises rolls the
    transaction back and is raised here. So every read-then-write is one transaction that no
    other process can interleave, and it is the one way to write: a write on a reading
    connection raises WriteOutsideItsTurn. `fn` is plain code: nothing can be awaited inside a
    turn, where every writer of every process waits on it; what must be asked elsewhere first
    (another service) is awaited before `write`. `on_connect` is run on each connection either
    pool opens: what the service says of its transactions (the enrollment outbox's switch).
    `relays_writes`: the file is a LiteFS read replica, which another host's instances write;
    every `write` then raises WriteOnReplica before anything is done."""

    def __init__(
        self,
        path: str | Path,
        *,
        writer_lock_file: Path | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
        relays_writes: bool = False,
        one_transaction_a_turn: bool = False,
    ) -> None:
        self.readers = ConnectionPool(
            path, query_only=True, writer_lock_file=writer_lock_file, on_connect=on_connect
        )
        self.writers = ConnectionPool(
            path, writer_lock_file=writer_lock_file, on_connect=on_connect
        )
        self.writer_lock = self.writers.writer_lock
        if one_transaction_a_turn:
            self.writer_lock.one_transaction_a_turn = True
        self.relays_writes = relays_writes
        if not relays_writes:
            # The writer's connection, made now: the first write does not wait for its setup. A
            # process runs its writes one at a time, so it is the only one (one per event loop).
            self.writers.give_back(self.writers.take())

    def read(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(conn, *args, **kwargs)` on a lent query-only connection (given back after)."""
        with self.readers.connection() as conn:
            try:
                return fn(conn, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_READONLY:  # query-only: `fn` wrote
                    raise WriteOutsideItsTurn(f"{fn.__name__} writes: use Database.write") from exc
                raise

    async def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(tx, *args, **kwargs)` as one BEGIN IMMEDIATE transaction in the write turn; its
        result once committed and on disk.

        The write of a request with an Idempotency-Key (the first write of its route, which
        `idempotency.pending` marked) runs under the key: its answer is recorded in its
        transaction, or the answer recorded before is found and nothing runs
        (`idempotency.once`); either way this raises `idempotency.Ran` once committed, and
        the route answers what was recorded."""
        if self.relays_writes:
            raise WriteOnReplica(f"{fn.__name__} writes, and this database is a read replica")
        keyed = idempotency.take()
        if keyed is None:
            return await self.write_aside(fn, *args, **kwargs)

        def keyed_job() -> None:
            with self.writers.connection() as conn, immediate(conn) as tx:
                idempotency.once(tx, keyed, fn, *args, **kwargs)

        await self.writer_lock.run(keyed_job)
        raise idempotency.Ran(keyed)

    async def write_aside(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`write` for a write that is not the request's own change, but keeps a record current
        before it (the caller, an account the registrar names): never under the request's
        Idempotency-Key, which is left for the route's own write."""
        if self.relays_writes:
            raise WriteOnReplica(f"{fn.__name__} writes, and this database is a read replica")

        def job() -> T:
            with self.writers.connection() as conn, immediate(conn) as tx:
                return fn(tx, *args, **kwargs)

        return await self.writer_lock.run(job)


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
