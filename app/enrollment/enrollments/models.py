"""Enrollments, waitlists and rosters as the API takes and shows them."""

from typing import Literal

from pydantic import BaseModel, Field

from app.common.models import Id, Strict
from app.enrollment.catalog.models import SectionOut

EnrollmentStatus = Literal["enrolled", "waitlisted", "dropped"]


# A section roster's filter: the current students by default, any one status, or every row.
RosterStatus = Literal["enrolled", "waitlisted", "dropped", "all"]


SectionsType = Literal["all", "enrolled", "instructing"]


class EnrollIn(Strict):
    section_id: Id


class EnrollmentOut(BaseModel):
    id: int
    section_id: int
    user_id: int
    status: EnrollmentStatus
    position: int | None = Field(description="waitlist position 1..n while waitlisted")
    created_at: str
    enrolled_at: str | None
    dropped_at: str | None
    drop_reason: str | None


class DropOut(BaseModel):
    dropped: EnrollmentOut
    promoted: list[EnrollmentOut]


class WaitlistEntry(BaseModel):
    id: int = Field(description="the entry's enrollment record (as in the enrollment listings)")
    section_id: int
    user_id: int
    username: str
    position: int
    joined_at: str


class SectionChange(BaseModel):
    section: SectionOut
    promoted: list[EnrollmentOut]
