"""Enrollments, waitlists and rosters as the API takes and shows them."""

from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

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


class SwapIn(Strict):
    """A conditional drop and add: the seat in `drop_section_id` is given up only if
    `add_section_id` takes the student (a seat, or a waitlist place when `waitlist_ok`)."""

    drop_section_id: Id
    add_section_id: Id
    waitlist_ok: bool = False

    @field_validator("add_section_id")
    @classmethod
    def _another_section(cls, value: int, info: ValidationInfo) -> int:
        if value == info.data.get("drop_section_id"):
            raise ValueError("must be another section than drop_section_id")
        return value


class SwapOut(BaseModel):
    dropped: EnrollmentOut = Field(description="the seat given up, now dropped (`swapped`)")
    added: EnrollmentOut = Field(description="the seat, or waitlist place, in the new section")
    promoted: list[EnrollmentOut] = Field(
        description="who took the seat given up, from its section's waitlist"
    )


class WaitlistEntry(BaseModel):
    id: int = Field(description="the entry's enrollment record (as in the enrollment listings)")
    section_id: int
    user_id: int
    username: str
    position: int
    joined_at: str


class PassedOver(BaseModel):
    at: str = Field(description="when a seat came free and the next eligible student took it")
    rule: str = Field(
        description="the eligibility rule that refused this student then: hold,"
        " prerequisite_missing, time_conflict, credit_limit, not_a_student"
    )
    detail: str = Field(description="that rule's refusal, in the API's words")


class OwnWaitlistEntry(WaitlistEntry):
    passed_over: PassedOver | None = Field(
        description="the latest time this place was skipped at a promotion since the student"
        " joined (the audit's waitlist.skip): they keep the place; null if never"
    )


class SectionChange(BaseModel):
    section: SectionOut
    promoted: list[EnrollmentOut]
