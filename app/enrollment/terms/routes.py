"""The terms' routes: terms, their registration windows, and a student's class level."""

from fastapi import Response

from app.common.identity import REGISTRAR
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.deps import Caller, Db
from app.enrollment.people.models import UserOut
from app.enrollment.routing import ANY_ROLE, Routes
from app.enrollment.sql import Row
from app.enrollment.terms import queries, service
from app.enrollment.terms.models import (
    ClassLevelIn,
    TermChange,
    TermIn,
    TermOut,
    WindowIn,
    WindowOut,
)

route = Routes()


@route("GET", "/terms", ANY_ROLE, response_model=list[TermOut])
async def list_terms(
    db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """The terms, in id order, a page at a time."""
    return db.read(queries.list_terms, after=after, limit=limit)


@route("GET", "/terms/{term_id}", ANY_ROLE, refuses={404: ["not_found"]}, response_model=TermOut)
async def get_term(term_id: PathId, db: Db, _: Caller) -> Row:
    """One term, with its add and drop deadlines."""
    return db.read(service.get_term_or_404, term_id)


@route(
    "POST",
    "/terms",
    (REGISTRAR,),
    refuses={409: ["term_exists"]},
    response_model=TermOut,
    status_code=201,
)
async def create_term(body: TermIn, db: Db, who: Caller) -> Row:
    """Open a term, with its add and drop deadlines (none if not given)."""
    return await db.write(service.create_term, who, body)


@route(
    "PATCH", "/terms/{term_id}", (REGISTRAR,), refuses={404: ["not_found"]}, response_model=TermOut
)
async def update_term(term_id: PathId, body: TermChange, db: Db, who: Caller) -> Row:
    """Rename a term, or move (null: remove) its add or drop deadline."""
    return await db.write(service.update_term, who, term_id, body)


@route(
    "GET",
    "/terms/{term_id}/windows",
    ANY_ROLE,
    refuses={404: ["not_found"]},
    response_model=list[WindowOut],
)
async def term_windows(
    term_id: PathId, db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """A term's registration windows, in id order, a page at a time."""
    return db.read(service.term_windows, term_id, after=after, limit=limit)


@route(
    "POST",
    "/terms/{term_id}/windows",
    (REGISTRAR,),
    refuses={404: ["not_found"]},
    response_model=WindowOut,
    status_code=201,
)
async def create_window(term_id: PathId, body: WindowIn, db: Db, who: Caller) -> Row:
    """Open a registration window: for a class level, for the students listed, or (neither
    given) for everyone. Once a term has windows, a student adds its sections only in one of
    theirs."""
    return await db.write(service.create_window, who, term_id, body)


@route(
    "DELETE",
    "/terms/{term_id}/windows/{window_id}",
    (REGISTRAR,),
    refuses={404: ["not_found"]},
    status_code=204,
)
async def delete_window(term_id: PathId, window_id: PathId, db: Db, who: Caller) -> Response:
    """Remove a registration window."""
    await db.write(service.delete_window, who, term_id, window_id)
    return Response(status_code=204)


@route(
    "PUT",
    "/users/{user_id}/class-level",
    (REGISTRAR,),
    refuses={404: ["not_found"]},
    response_model=UserOut,
)
async def set_class_level(user_id: PathId, body: ClassLevelIn, db: Db, who: Caller) -> Row:
    """Set a student's class level (the registration windows for a class level use it)."""
    return await db.write(service.set_class_level, who, user_id, body.class_level)
