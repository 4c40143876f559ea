"""The people's routes: the registrar's directory of users, a user's own record, and the route
by which the auth service announces an account."""

from fastapi import APIRouter, Response

from app.common.identity import REGISTRAR
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.deps import AppSettings, Caller, Db, FromService
from app.enrollment.people import directory, queries, service
from app.enrollment.people.models import AccountIn, UserOut
from app.enrollment.routing import SELF, Routes
from app.enrollment.sql import Row

route = Routes()


@route("GET", "/users", (REGISTRAR,), response_model=list[UserOut])
async def list_users(
    db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """The users the enrollment service knows, in id order, a page at a time."""
    return db.read(queries.list_users, after=after, limit=limit)


@route(
    "GET",
    "/users/{user_id}",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=UserOut,
)
async def get_user(user_id: PathId, db: Db, who: Caller, settings: AppSettings) -> Row:
    """A user's record: your own, anyone's for the registrar, and for an instructor, a student's
    on a roster or waitlist of a section they teach. Staff (the registrar, an instructor) are
    shown the email address too, as the auth service has it: an instructor writes to their
    students; null when the auth service cannot be asked."""
    account = await directory.make_current(db, settings, user_id) if who.is_registrar else None
    record = db.read(service.user_profile, who, user_id)  # refused before anything is asked
    if not who.is_staff:
        return record
    if account is None and not who.is_registrar:
        account = await directory.fetch_account(settings, user_id)
    return {**record, "email": account["email"] if account else None}


# service to service: routes for the other services of this installation (gateway secret, no
# user), never routed by a gateway and out of the OpenAPI schema
internal = APIRouter(include_in_schema=False, dependencies=[FromService])


@internal.put("/internal/users/{user_id}", status_code=204)
async def account_announced(user_id: PathId, body: AccountIn, db: Db) -> Response:
    """The auth service announces an account it has created or changed: recorded here at once,
    names included, so every account is known before its user's first request."""
    account = {"id": user_id, **body.model_dump()}
    if not db.read(service.account_is_recorded, account):
        await db.write(service.remember_account, account)
    return Response(status_code=204)
