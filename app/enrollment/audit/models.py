"""The audit trail as the API shows it."""

from typing import Any, Literal

from pydantic import BaseModel

AuditAction = Literal[
    "course.create",
    "section.create",
    "section.update",
    "section.delete",
    "enrollment.enroll",
    "enrollment.drop",
    "enrollment.administrative_drop",
    "enrollment.swap",
    "waitlist.leave",
    "waitlist.skip",
    "offer.accept",
    "offer.decline",
    "offer.expire",
    "hold.place",
    "hold.lift",
    "permit.grant",
    "permit.revoke",
    "course.prerequisites",
    "completed.import",
    "user.credit_limit",
    "user.class_level",
    "term.create",
    "term.update",
    "window.create",
    "window.delete",
]


class AuditEntry(BaseModel):
    id: int
    at: str
    actor_id: int
    actor_role: str
    action: AuditAction
    course_id: int | None
    section_id: int | None
    user_id: int | None
    details: dict[Any, Any]  # as bare `dict`: any JSON object
