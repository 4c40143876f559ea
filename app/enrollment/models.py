"""Request and response models of the enrollment service."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, Json, model_validator
from pydantic import Strict as PydanticStrict

from app.common.identity import Role
from app.common.models import Change, Id, Strict, Text

Capacity = Annotated[int, Field(ge=0, le=10_000)]


EnrollmentStatus = Literal["enrolled", "waitlisted", "dropped"]
# A section roster's filter: the current students by default, any one status, or every row.
RosterStatus = Literal["enrolled", "waitlisted", "dropped", "all"]
SectionsType = Literal["all", "enrolled", "instructing"]


class DepartmentOut(BaseModel):
    id: int
    code: str
    name: str


class CourseCreate(Strict):
    department_id: Id
    code: Annotated[str, Field(pattern=r"^[A-Z]{2,5} [0-9]{3}[A-Z]?$", examples=["CPSC 449"])]
    title: Text(200, min_length=1)
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
    room: Text(64) = ""
    schedule: Text(128) = ""
    meetings: Meetings = []


class SectionUpdate(Change):
    freeze: bool | None = None
    instructor_id: Id | None = None
    capacity: Capacity | None = None
    waitlist_capacity: Capacity | None = None
    meetings: Meetings | None = None


class SectionOut(BaseModel):
    id: int
    course_id: int
    term_id: int | None
    course_code: str
    course_title: str
    credits: int
    section_number: int
    instructor_id: int | None
    capacity: int
    waitlist_capacity: int
    frozen: bool
    room: str
    schedule: str
    meetings: Json[list[Meeting]]
    enrolled: int
    waitlisted: int
    seats_available: int


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


class UserOut(BaseModel):
    id: int
    username: str
    first_name: str
    last_name: str
    roles: list[str]
    credit_limit: int | None = Field(None, description="credits a term; null: the default (18)")
    class_level: str | None = Field(None, description="for registration windows")


AuditAction = Literal[
    "course.create",
    "section.create",
    "section.update",
    "section.delete",
    "enrollment.enroll",
    "enrollment.drop",
    "enrollment.administrative_drop",
    "waitlist.leave",
    "waitlist.skip",
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
    details: dict


class AccountIn(Strict):
    """An account as the auth service announces it (app/auth/announce.py)."""

    username: Text(64, min_length=1)
    first_name: Text(64)
    last_name: Text(64)
    roles: Annotated[list[Role], Field(min_length=1, max_length=3)]


# eligibility

Waiver = Literal["capacity", "prerequisite", "time_conflict", "credit_limit", "window"]


class HoldIn(Strict):
    reason: Text(200, min_length=1, strip=True)


class HoldOut(BaseModel):
    id: int
    user_id: int
    reason: str
    placed_by: int
    placed_at: str
    lifted_by: int | None
    lifted_at: str | None


class PermitIn(Strict):
    user_id: Id
    waives: Annotated[list[Waiver], Field(min_length=1, max_length=5)]

    @model_validator(mode="after")
    def _distinct(self) -> "PermitIn":
        if len(set(self.waives)) != len(self.waives):
            raise ValueError("waives must not repeat a rule")
        return self


class PermitOut(BaseModel):
    id: int
    section_id: int
    user_id: int
    waives: list[Waiver]
    granted_by: int
    granted_at: str
    revoked_at: str | None


class PrerequisitesIn(Strict):
    course_ids: Annotated[list[Id], Field(max_length=20)]


class CreditLimitIn(Strict):
    credit_limit: Annotated[int, Field(ge=0, le=40)] | None = Field(
        description="credits a term this student may hold; null: the default"
    )


class CompletedCourse(BaseModel):
    user_id: int
    course_id: int
    course_code: str
    term: str
    grade: str


class ImportOut(BaseModel):
    imported: int = Field(description="rows added or updated")


# terms and registration windows

ClassLevel = Literal["freshman", "sophomore", "junior", "senior", "graduate"]


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be ISO 8601 text with a UTC offset, e.g. 2027-01-04T16:00:00Z")
    return value


# ISO 8601 text with its UTC offset: text only (lax mode would take a number as Unix time), then
# parsed laxly (JSON has no datetime type, so strict mode would refuse all).
Moment = Annotated[
    AwareDatetime,
    PydanticStrict(False),
    BeforeValidator(_iso_text),
    Field(description="a moment with its UTC offset", examples=["2027-01-04T16:00:00Z"]),
]


def utc_text(moment: datetime) -> str:
    """A moment as every timestamp here is stored: UTC, milliseconds, Z (compares as text)."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class TermIn(Strict):
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,16}$", examples=["2027-SP"])]
    name: Text(64) = ""
    add_deadline: Moment | None = None
    drop_deadline: Moment | None = None


class TermChange(Change):
    nullable = frozenset({"add_deadline", "drop_deadline"})  # null: no deadline

    name: Text(64) | None = None
    add_deadline: Moment | None = None
    drop_deadline: Moment | None = None


class TermOut(BaseModel):
    id: int
    code: str
    name: str
    add_deadline: str | None
    drop_deadline: str | None


class WindowIn(Strict):
    opens_at: Moment
    closes_at: Moment
    class_level: ClassLevel | None = None
    user_ids: Annotated[list[Id], Field(max_length=5000)] = []

    @model_validator(mode="after")
    def _valid(self) -> "WindowIn":
        if self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        if self.class_level is not None and self.user_ids:
            raise ValueError("give class_level or user_ids, not both")
        return self


class WindowOut(BaseModel):
    id: int
    term_id: int
    opens_at: str
    closes_at: str
    class_level: ClassLevel | None
    user_ids: list[int]


class ClassLevelIn(Strict):
    class_level: ClassLevel | None
