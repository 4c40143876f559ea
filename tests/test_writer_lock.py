"""The writer queue in app/common/db.py: writers of several processes take turns, and a writer
cancelled while it waits never leaves the lock held (which would stop every instance's writes)."""

import asyncio
import fcntl
import os
from contextlib import suppress

from app.common.db import WriterLock


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
        async def writer() -> None:
            async with lock.turn():
                order.append("ours")

        task = asyncio.create_task(writer())
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

    async def scenario() -> None:
        async def writer() -> None:
            async with lock.turn():
                await asyncio.sleep(30)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)  # now waiting for its turn
        task.cancel()
        fcntl.flock(other, fcntl.LOCK_UN)  # the lock comes free just after the cancel
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert is_free(path), "a cancelled writer left the write lock held"
    os.close(other)
