"""Request and response bodies of the auth service. Input is strict: wrong types, unknown fields
and out-of-range values are 422 with the field named, before anything is read or written."""

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.common.identity import STUDENT, Role
from app.common.models import Change, Strict, printable


def _lowercase(value: Any) -> Any:
    # Usernames are case-insensitive: "AJohnson" signs in as, and collides with, "ajohnson".
    return value.lower() if isinstance(value, str) else value


def _distinct(roles: list[str]) -> list[str]:
    if len(set(roles)) != len(roles):
        raise ValueError("roles must not repeat")
    return roles


# Constraints first, then BeforeValidator: it wraps them, so they see the lowercased value.
NewUsername = Annotated[
    str,
    StringConstraints(min_length=3, max_length=32, pattern=r"^[a-z0-9._-]+$"),
    BeforeValidator(_lowercase),
    Field(description="3-32 of a-z 0-9 . _ -, stored lowercase"),
]
# Length per OWASP ASVS 2.1: at least 12 characters, at least 64 allowed, any characters at all.
NewPassword = Annotated[str, StringConstraints(min_length=12, max_length=128)]
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(printable),
]
Roles = Annotated[list[Role], Field(min_length=1, max_length=3), AfterValidator(_distinct)]


class RegisterIn(Strict):
    username: NewUsername
    password: NewPassword
    first_name: PersonName
    last_name: PersonName
    roles: Roles = [STUDENT]

    @field_validator("password")
    @classmethod
    def _not_the_username(cls, password: str, info: ValidationInfo) -> str:
        username = info.data.get("username")
        if username is not None and password.lower() == username:
            raise ValueError("password must not be the username")
        return password


class LoginIn(Strict):
    # Deliberately loose: any username or password is a 401 if wrong, never a hint about format.
    username: Annotated[
        str, StringConstraints(min_length=1, max_length=64), BeforeValidator(_lowercase)
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RefreshIn(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class UserOut(BaseModel):
    id: int
    username: str
    first_name: str
    last_name: str
    roles: list[Role]


class AccountOut(UserOut):
    disabled: bool = Field(description="a disabled account signs in nowhere; its refresh fails")


class AccountChange(Change):
    """A registrar's change to an account: any of these fields, at least one, none null."""

    roles: Roles | None = None
    disabled: bool | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None


class PasswordIn(Strict):
    password: NewPassword


class LogoutIn(RefreshIn):
    """The session to end: its current refresh token."""


AccountAction = Literal[
    "account.create",
    "account.roles",
    "account.names",
    "account.disable",
    "account.enable",
    "account.password",
]


class AccountAuditEntry(BaseModel):
    """A registrar's change to an account (never a password or a hash)."""

    id: int
    at: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.sssZ")
    actor_id: int = Field(description="the registrar who made the change")
    actor_role: Literal["registrar"] = "registrar"
    action: AccountAction
    user_id: int = Field(description="the account changed")
    details: dict[str, Any] = Field(description="what changed: roles before and after, names, ...")


class AccessTokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class TokenOut(AccessTokenOut):
    refresh_token: str = Field(
        description="use it once: a refresh answers with the next one, and presenting a used one"
        " again ends the session"
    )
