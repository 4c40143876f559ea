"""The writer queue in app/common/db.py: writers of several processes take turns, a process runs
the writes queued by its requests back to back in one turn, and a writer cancelled while it
waits never leaves the lock held (which would stop every instance's writes). A write
transaction on the event loop needs the turn (else it would block the loop), and every
enrollment route that writes gets it from the one place, `Database.write` (`await db.write(...)`);
a connection lent for reading cannot write at all."""

import asyncio
import fcntl
import inspect
import os
import threading
from contextlib import suppress

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.common.db import (
    CommitNotOnDisk,
    Database,
    WriteOutsideItsTurn,
    WriterLock,
    connect,
    immediate,
)
from app.common.identity import gateway_headers
from app.enrollment.deps import CallerFirst
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.routes import router
from app.enrollment.settings import Settings
from harness.enroll_cluster import write_secret


def other_process_holds(path) -> int:
    """An open file description of its own, as another process would have; flock conflicts
    between descriptions even inside one process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def is_free(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_writer_waits_for_another_process_then_gets_its_turn(tmp_path):
    path = tmp_path / "db.writer-lock"
    other = other_process_holds(path)
    lock = WriterLock(path)
    order: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(lock.run(lambda: order.append("ours")))
        await asyncio.sleep(0.2)
        order.append("other done")
        fcntl.flock(other, fcntl.LOCK_UN)
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert order == ["other done", "ours"]
    assert is_free(path)
    os.close(other)


def test_a_writer_cancelled_while_waiting_does_not_keep_the_lock(tmp_path):
    path = tmp_path / "db.writer-lock"
    other = other_process_holds(path)
    lock = WriterLock(path)
    ran: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(lock.run(lambda: ran.append("cancelled one")))
        await asyncio.sleep(0.2)  # now waiting for its turn
        task.cancel()
        fcntl.flock(other, fcntl.LOCK_UN)  # the lock comes free just after the cancel
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await asyncio.wait_for(lock.run(lambda: ran.append("next one")), 5)

    asyncio.run(scenario())
    assert is_free(path), "a cancelled writer left the write lock held"
    assert ran == ["next one"], "a write whose caller had gone away was run all the same"
    os.close(other)


def test_writes_queued_meanwhile_run_in_one_turn_in_order_each_answered_its_own(tmp_path):
    """While another process writes, this one's writers queue; when the lock comes free they
    run back to back in arrival order, and each caller gets its own result or its own error."""
    path = tmp_path / "db.writer-lock"
    other = other_process_holds(path)
    lock = WriterLock(path)
    order: list[int] = []
    held_throughout: list[bool] = []

    def write(n: int):
        def job() -> int:
            order.append(n)
            held_throughout.append(not is_free(path))
            if n == 3:
                raise ValueError("seat 3 is gone")
            return n * 10

        return job

    async def scenario() -> list:
        tasks = [asyncio.create_task(lock.run(write(n))) for n in range(1, 6)]
        await asyncio.sleep(0.2)
        assert order == [], "a write ran while another process held the lock"
        fcntl.flock(other, fcntl.LOCK_UN)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    results = asyncio.run(scenario())
    assert order == [1, 2, 3, 4, 5]
    assert results[:2] == [10, 20] and results[3:] == [40, 50]
    assert isinstance(results[2], ValueError) and str(results[2]) == "seat 3 is gone"
    assert all(held_throughout), "a write ran without the lock file held"
    assert is_free(path)
    os.close(other)


# group commit: a write is answered once it is on disk


def test_writes_of_one_turn_are_synced_once_before_any_is_answered(tmp_path, monkeypatch):
    """A power cut must not undo a seat the student was told is theirs: the WAL is synced
    after a turn's commits and before any of its writers is answered, once for the turn."""
    database = tmp_path / "x.db"
    connect(database).execute("CREATE TABLE t (n INTEGER)")
    db = Database(database, writer_lock_file=tmp_path / "x.db.writer-lock")
    events: list[tuple] = []
    real_sync = os.fdatasync

    def sync(fd: int) -> None:
        events.append(("synced", os.readlink(f"/proc/self/fd/{fd}")))
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", sync)

    def insert(tx, n: int) -> int:
        tx.execute("INSERT INTO t VALUES (?)", (n,))
        return n

    async def scenario() -> None:
        async def write(n: int) -> None:
            events.append(("answered", await db.write(insert, n)))

        await asyncio.gather(*(write(n) for n in range(3)))
        await db.writer_lock.run(
            lambda: db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone())
        )
        events.append(("a turn that only read",))

    asyncio.run(scenario())
    wal = str(database) + "-wal"
    assert events == [("synced", wal), ("answered", 0), ("answered", 1), ("answered", 2),
                      ("a turn that only read",)]  # fmt: skip


def test_a_turn_whose_commits_cannot_be_synced_answers_each_writer_so(tmp_path, monkeypatch):
    connect(tmp_path / "x.db").execute("CREATE TABLE t (n INTEGER)")
    db = Database(tmp_path / "x.db", writer_lock_file=tmp_path / "x.db.writer-lock")

    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_sync)

    def insert(tx) -> None:
        tx.execute("INSERT INTO t VALUES (1)")

    async def scenario() -> list:
        writes = (db.write(insert) for _ in range(2))
        return await asyncio.gather(*writes, return_exceptions=True)

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [CommitNotOnDisk, CommitNotOnDisk]
    assert "Input/output error" in str(results[0])


# the one write entry point


def test_a_write_on_the_event_loop_without_the_turn_fails_loudly(tmp_path):
    conn = connect(tmp_path / "x.db", writer_lock_file=tmp_path / "x.db.writer-lock")
    conn.execute("CREATE TABLE t (n INTEGER)")
    db = Database(tmp_path / "x.db", writer_lock_file=tmp_path / "x.db.writer-lock")

    async def without_turn() -> None:
        with immediate(conn):
            conn.execute("INSERT INTO t VALUES (1)")

    def insert(tx, n: int) -> None:
        tx.execute("INSERT INTO t VALUES (?)", (n,))

    async def with_turn() -> None:
        await db.write(insert, 2)

    async def reading_connection() -> None:
        db.read(insert, 4)

    with pytest.raises(WriteOutsideItsTurn):
        asyncio.run(without_turn())
    asyncio.run(with_turn())
    with pytest.raises(WriteOutsideItsTurn):  # a connection lent for reading cannot write
        asyncio.run(reading_connection())
    with immediate(conn):  # off the loop (a worker thread, a script): joins the queue itself
        conn.execute("INSERT INTO t VALUES (3)")
    assert [n for (n,) in conn.execute("SELECT n FROM t")] == [2, 3]


def test_every_enrollment_route_that_writes_takes_the_write_turn_and_no_read_does():
    """A route that writes says so in its code, `await db.write(...)`; a read's code names no
    write (and its connection could not write: the test above)."""
    for route in router.routes:
        assert isinstance(route, APIRoute)
        writes = route.methods != {"GET"}
        takes_turn = "write" in inspect.unwrap(route.endpoint).__code__.co_names
        assert takes_turn is writes, (route.methods, route.path)
        assert isinstance(route, CallerFirst), f"{route.path} does not identify its caller"


def test_a_route_that_writes_holds_the_turn_while_it_runs_and_gives_it_up_after(tmp_path):
    """Through the app: an enroll takes the turn (another process holding the lock file makes it
    wait), and the lock is free again once the answer is out."""
    database = tmp_path / "enroll.db"
    init_db(database)
    secret = write_secret(tmp_path / "gateway.secret")
    settings = Settings(database=database, gateway_secret_file=secret, instance="t")
    lock_file = database.with_name("enroll.db.writer-lock")
    headers = gateway_headers(secret.read_text(), 10, "lsmith", "student")
    with TestClient(create_app(settings)) as client:
        assert client.get("/users/10", headers=headers).status_code == 200  # row is current
        other = other_process_holds(lock_file)
        answers: list[int] = []
        enroll = threading.Thread(
            target=lambda: answers.append(
                client.post(
                    "/users/10/enrollments", json={"section_id": 4}, headers=headers
                ).status_code
            )
        )
        enroll.start()
        enroll.join(0.5)
        waited = enroll.is_alive()
        fcntl.flock(other, fcntl.LOCK_UN)
        enroll.join(10)
        os.close(other)

    assert waited, "the write did not wait for the writer lock"
    assert answers == [201]
    assert is_free(lock_file)
