"""Input building blocks both services share: the strict base class of every request body, and
free text a person typed."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class Strict(BaseModel):
    """A request body: wrong types and unknown fields are 422 naming the field, never coerced or
    ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


def printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


def Text(max_length: int, min_length: int = 0, *, strip: bool = False):  # noqa: N802 - a type
    """Free text a person typed: no control characters (NUL, escapes), bounded length; `strip`
    drops surrounding whitespace first."""
    constraints = StringConstraints(
        strip_whitespace=strip, min_length=min_length, max_length=max_length
    )
    return Annotated[str, constraints, AfterValidator(printable)]
