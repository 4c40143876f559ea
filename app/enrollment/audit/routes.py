"""The audit trail's route: the registrar reads it."""

from typing import Annotated

from fastapi import Query

from app.common.identity import REGISTRAR
from app.common.models import Id
from app.common.params import DEFAULT_PAGE, After, PageLimit
from app.enrollment.audit import service
from app.enrollment.audit.models import AuditAction, AuditEntry
from app.enrollment.deps import Caller, Db
from app.enrollment.routing import Routes
from app.enrollment.sql import Row

route = Routes()


@route("GET", "/audit", (REGISTRAR,), response_model=list[AuditEntry])
async def audit_trail(
    db: Db,
    _: Caller,
    actor_id: Annotated[Id | None, Query()] = None,
    section_id: Annotated[Id | None, Query()] = None,
    user_id: Annotated[Id | None, Query()] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """Registrar and instructor actions, newest first, a page at a time (each page older than
    the last)."""
    return db.read(
        service.audit_trail,
        actor_id=actor_id,
        section_id=section_id,
        user_id=user_id,
        action=action,
        after=after,
        limit=limit,
    )
