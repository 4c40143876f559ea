"""Courses and sections as the API takes and shows them."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, Json, model_validator

from app.common.models import Change, Id, Printable, Strict, text_bounds

Capacity = Annotated[int, Field(ge=0, le=10_000)]
CourseTitle = Annotated[str, text_bounds(200, min_length=1), Printable]
Room = Annotated[str, text_bounds(64), Printable]
Schedule = Annotated[str, text_bounds(128), Printable]
# What a freed seat does: `auto` enrolls the head of the waitlist; `offer` holds it for them for
# `claim_seconds` (at most 14 days) to accept or decline (app/enrollment/offers).
WaitlistMode = Literal["auto", "offer"]
ClaimSeconds = Annotated[int, Field(ge=1, le=14 * 86400, examples=[86400])]


class DepartmentOut(BaseModel):
    id: int
    code: str
    name: str


class CourseCreate(Strict):
    department_id: Id
    code: Annotated[str, Field(pattern=r"^[A-Z]{2,5} [0-9]{3}[A-Z]?$", examples=["CPSC 449"])]
    title: CourseTitle
    credits: Annotated[int, Field(ge=0, le=12)] = 3


class CourseOut(BaseModel):
    id: int
    department_id: int
    department_code: str
    code: str
    title: str
    credits: int


# Days of the week a section meets, in this order: M T W R(Thursday) F S U(Sunday).
Days = Annotated[
    str,
    Field(pattern=r"^M?T?W?R?F?S?U?$", min_length=1, max_length=7, examples=["MW", "TR"]),
]


TimeOfDay = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["09:00"])]


class Meeting(Strict):
    """When a section meets: on `days`, from `start` to `end` (24-hour HH:MM)."""

    days: Days
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> "Meeting":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


Meetings = Annotated[list[Meeting], Field(max_length=7)]


class SectionCreate(Strict):
    course_id: Id
    term_id: Id | None = None
    section_number: Annotated[int, Field(gt=0, le=999)]
    instructor_id: Id | None = None
    capacity: Capacity
    waitlist_capacity: Capacity = 15
    room: Room = ""
    schedule: Schedule = ""
    meetings: Meetings = []
    waitlist_mode: WaitlistMode = "auto"
    claim_seconds: ClaimSeconds = 86400


class SectionUpdate(Change):
    freeze: bool | None = None
    instructor_id: Id | None = None
    capacity: Capacity | None = None
    waitlist_capacity: Capacity | None = None
    meetings: Meetings | None = None
    waitlist_mode: WaitlistMode | None = None
    claim_seconds: ClaimSeconds | None = None


class SectionOut(BaseModel):
    id: int
    course_id: int
    term_id: int | None
    course_code: str
    course_title: str
    credits: int
    section_number: int
    instructor_id: int | None
    instructor_name: str | None = Field(
        None, description="the instructor's first and last name; null: none, or not known yet"
    )
    capacity: int
    waitlist_capacity: int
    frozen: bool
    room: str
    schedule: str
    meetings: Json[list[Meeting]]
    waitlist_mode: WaitlistMode
    claim_seconds: int
    enrolled: int
    waitlisted: int
    offered: int = Field(description="seats held by open offers to waitlisted students")
    seats_available: int = Field(description="capacity less the enrolled and the offered")
