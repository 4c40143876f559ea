"""The caller, and users as the API shows them."""

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, Field

from app.common.identity import INSTRUCTOR, REGISTRAR, Role
from app.common.models import Printable, Strict, text_bounds

# As the auth service announces them: bounded, no control characters (app/auth/models.py checks
# new ones more strictly).
AnnouncedUsername = Annotated[str, text_bounds(64, min_length=1), Printable]
AnnouncedName = Annotated[str, text_bounds(64), Printable]


@dataclass(frozen=True)
class Identity:
    """Who is calling, as the gateway vouches for them (app/enrollment/deps.py `identify`)."""

    user_id: int
    username: str
    roles: frozenset[str]

    @property
    def is_registrar(self) -> bool:
        return REGISTRAR in self.roles

    @property
    def is_staff(self) -> bool:
        return REGISTRAR in self.roles or INSTRUCTOR in self.roles


class UserOut(BaseModel):
    id: int
    username: str
    first_name: str
    last_name: str
    roles: list[str]
    credit_limit: int | None = Field(None, description="credits a term; null: the default (18)")
    class_level: str | None = Field(None, description="for registration windows")
    email: str | None = Field(
        None,
        description="GET /users/{id} to the registrar or an instructor: where notifications go"
        " (the auth service's); null otherwise, or when the auth service cannot be asked",
    )


class AccountIn(Strict):
    """An account as the auth service announces it (app/auth/announce.py)."""

    username: AnnouncedUsername
    first_name: AnnouncedName
    last_name: AnnouncedName
    roles: Annotated[list[Role], Field(min_length=1, max_length=3)]
