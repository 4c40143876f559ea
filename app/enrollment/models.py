"""Request and response models of the enrollment service."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from app.common.identity import Role
from app.common.models import Strict, Text

# Ids are positive and fit a signed 64-bit SQLite integer; anything else is a 422 naming the field.
Id = Annotated[int, Field(gt=0, le=2**63 - 1)]
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


class SectionCreate(Strict):
    course_id: Id
    section_number: Annotated[int, Field(gt=0, le=999)]
    instructor_id: Id | None = None
    capacity: Capacity
    waitlist_capacity: Capacity = 15
    room: Text(64) = ""
    schedule: Text(128) = ""


class SectionUpdate(Strict):
    freeze: bool | None = None
    instructor_id: Id | None = None
    capacity: Capacity | None = None
    waitlist_capacity: Capacity | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> "SectionUpdate":
        if not self.model_fields_set:
            raise ValueError(
                "nothing to change: give freeze, instructor_id, capacity or waitlist_capacity"
            )
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class SectionOut(BaseModel):
    id: int
    course_id: int
    course_code: str
    course_title: str
    section_number: int
    instructor_id: int | None
    capacity: int
    waitlist_capacity: int
    frozen: bool
    room: str
    schedule: str
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


AuditAction = Literal[
    "course.create",
    "section.create",
    "section.update",
    "section.delete",
    "enrollment.enroll",
    "enrollment.drop",
    "enrollment.administrative_drop",
    "waitlist.leave",
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
