"""Notifications' routes: a person's own list and its read marks, and the registrar's list of
what the notifier has not delivered yet."""

from typing import Annotated

from fastapi import Query

from app.common.identity import REGISTRAR
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.deps import Caller, Db
from app.enrollment.notifications import service
from app.enrollment.notifications.models import (
    NotificationOut,
    ReadCount,
    ReadIn,
    ReadUpToIn,
    UndeliveredOut,
)
from app.enrollment.routing import SELF, Routes
from app.enrollment.sql import Row

route = Routes()


@route(
    "GET",
    "/users/{user_id}/notifications",
    SELF,
    refuses={403: ["forbidden"]},
    response_model=list[NotificationOut],
)
async def user_notifications(
    user_id: PathId,
    db: Db,
    who: Caller,
    unread: Annotated[
        bool | None, Query(description="Only unread (true) or only read (false) ones")
    ] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A user's notifications, newest first, a page at a time (that user; the registrar)."""
    return db.read(
        service.user_notifications, who, user_id, unread=unread, after=after, limit=limit
    )


@route(
    "PATCH",
    "/users/{user_id}/notifications",
    SELF,
    refuses={403: ["forbidden"]},
    response_model=ReadCount,
)
async def mark_read_up_to(user_id: PathId, body: ReadUpToIn, db: Db, who: Caller) -> Row:
    """Mark every notification up to `read_up_to` read (that user only): the newest one their
    list showed them. Answers how many were marked and how many are still unread."""
    return await db.write(service.mark_read_up_to, who, user_id, body.read_up_to)


@route(
    "PATCH",
    "/users/{user_id}/notifications/{notification_id}",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=NotificationOut,
)
async def set_read(
    user_id: PathId, notification_id: PathId, body: ReadIn, db: Db, who: Caller
) -> Row:
    """Mark one notification read, or unread again (that user only)."""
    return await db.write(service.set_read, who, user_id, notification_id, body.read)


@route(
    "GET",
    "/notifications/undelivered",
    (REGISTRAR,),
    response_model=list[UndeliveredOut],
)
async def undelivered(
    db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """Notifications the notifier has not delivered yet, oldest first, with their failed
    attempts and last error (registrar): what the mail server or an address is refusing."""
    return db.read(service.undelivered, after=after, limit=limit)
