"""Terms, registration windows and class levels as the API takes and shows them, and the one
way a moment is stored."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, model_validator
from pydantic import Strict as PydanticStrict

from app.common.models import Change, Id, Printable, Strict, text_bounds

ClassLevel = Literal["freshman", "sophomore", "junior", "senior", "graduate"]
TermName = Annotated[str, text_bounds(64), Printable]


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


def now() -> str:
    """This moment, as `utc_text` stores it (it compares with a stored deadline as text)."""
    return utc_text(datetime.now(UTC))


class TermIn(Strict):
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,16}$", examples=["2027-SP"])]
    name: TermName = ""
    add_deadline: Moment | None = None
    drop_deadline: Moment | None = None


class TermChange(Change):
    nullable = frozenset({"add_deadline", "drop_deadline"})  # null: no deadline

    name: TermName | None = None
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
