"""Seat offers' routes: a student's offers, and their answer to one."""

from typing import Annotated

from fastapi import Query

from app.common.identity import REGISTRAR, STUDENT
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.deps import Caller, Db
from app.enrollment.enrollments.models import EnrollmentOut
from app.enrollment.offers import service
from app.enrollment.offers.models import OfferOut, OfferStatus
from app.enrollment.routing import SELF, Routes
from app.enrollment.sql import Row

route = Routes()

_ANSWER_REFUSALS = {
    403: ["forbidden"],
    404: ["not_found"],
    409: ["offer_closed", "offer_expired"],
}


@route(
    "GET",
    "/users/{user_id}/offers",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[OfferOut],
)
async def user_offers(
    user_id: PathId,
    db: Db,
    who: Caller,
    status: Annotated[OfferStatus | None, Query(description="only offers in this state")] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A user's seat offers, newest first, a page at a time: an open one holds a seat until its
    `expires_at`."""
    return db.read(service.user_offers, who, user_id, status, after=after, limit=limit)


@route(
    "POST",
    "/users/{user_id}/offers/{offer_id}/accept",
    (STUDENT, REGISTRAR),
    refuses={
        **_ANSWER_REFUSALS,
        # the eligibility rules of a promotion, asked again (`promotion_refusal`)
        409: [
            *_ANSWER_REFUSALS[409],
            "not_a_student",
            "hold",
            "prerequisite_missing",
            "time_conflict",
            "credit_limit",
        ],
    },
    response_model=EnrollmentOut,
)
async def accept_offer(user_id: PathId, offer_id: PathId, db: Db, who: Caller) -> Row:
    """Take the seat held for you: you are enrolled. Refused once the offer has closed or its
    deadline passed, or if a rule now refuses you the seat (the offer stays open until then)."""
    return await db.write(service.accept, who, user_id, offer_id)


@route(
    "POST",
    "/users/{user_id}/offers/{offer_id}/decline",
    (STUDENT, REGISTRAR),
    refuses=_ANSWER_REFUSALS,
    response_model=OfferOut,
)
async def decline_offer(user_id: PathId, offer_id: PathId, db: Db, who: Caller) -> Row:
    """Turn the seat down: you leave the section's waitlist, and the seat is offered to the next
    student in line."""
    return await db.write(service.decline, who, user_id, offer_id)
