"""Input building blocks both services share: the strict base class of every request body, ids,
free text a person typed, and a change that must change something."""

from typing import Annotated, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# Ids are positive and fit a signed 64-bit SQLite integer; anything else is a 422 naming the field.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(gt=0, le=MAX_ID)]


class Strict(BaseModel):
    """A request body: wrong types and unknown fields are 422 naming the field, never coerced or
    ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Change(Strict):
    """A body that changes some fields of a record (PATCH): at least one of them given, and none
    given as null but those in `nullable` (where null removes the value)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _something(self) -> Self:
        names = list(type(self).model_fields)
        if not self.model_fields_set:
            raise ValueError(f"nothing to change: give {', '.join(names[:-1])} or {names[-1]}")
        for name in names:
            if name in self.model_fields_set - self.nullable and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


def printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


# Free text a person typed is a named alias, as a type checker needs (no call in an annotation):
# `RoomText = Annotated[str, text_bounds(64), Printable]`.
Printable = AfterValidator(printable)  # no control characters (NUL, escapes)


def text_bounds(max_length: int, min_length: int = 0, *, strip: bool = False) -> StringConstraints:
    """The length bounds of free text a person typed; `strip` drops surrounding whitespace
    first."""
    return StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)
