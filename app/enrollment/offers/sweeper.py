"""The clock of seat offers: expires an offer whose claim window has passed, and offers its seat
to the next student, with no request needed. Every enrollment instance runs one while it serves
(app/enrollment/main.py); they take the database's write turn like any write, so the first to
see a passed deadline closes it and the others find nothing left to do. Between deadlines each
costs one read per tick (an index probe)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from app.common.db import Database
from app.enrollment.offers import service

log = logging.getLogger("enrollment.offers")


async def sweep_once(db: Database) -> int:
    """Expire what is due now; how many offers expired."""
    if not db.read(service.any_due):
        return 0
    return await db.write_aside(service.expire_due)


async def _run(db: Database, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            expired = await sweep_once(db)
        except Exception:  # a busy or broken database: the next tick tries again
            log.exception("expiring seat offers failed; trying again in %.1f s", every)
            continue
        if expired:
            log.info("expired %d seat offers", expired)


@asynccontextmanager
async def running(db: Database, every: float) -> AsyncIterator[None]:
    """The sweeper, ticking every `every` seconds, for as long as the context lasts."""
    task = asyncio.create_task(_run(db, every), name="seat-offer-sweeper")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
