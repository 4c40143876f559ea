"""Request and response bodies of the auth service. Input is strict: wrong types, unknown fields
and out-of-range values are 422 with the field named, before anything is read or written."""

import re
from typing import Annotated, Any, ClassVar, Literal

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


# An address mail can be sent to: a dot-atom local part (RFC 5322 3.2.3, no quoting), one `@`,
# and a domain of dot-separated labels with a top-level part; at most 254 characters (RFC 5321
# 4.5.3.1.3). No spaces or line breaks: it goes into an SMTP envelope and a To header.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(\.{_ATOM})*@({_LABEL}\.)+[A-Za-z]{{2,63}}")


def _email_address(value: str) -> str:
    if _EMAIL.fullmatch(value) is None:
        raise ValueError("must be an email address such as name@example.edu")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=254),
    AfterValidator(_email_address),
    Field(
        description="where notifications go; without one, <username>@<AUTH_MAIL_DOMAIN>",
        examples=["ajohnson@example.edu"],
        # What the validator takes, for clients and for the fuzz tests' generated bodies.
        json_schema_extra={"format": "email", "pattern": f"^{_EMAIL.pattern}$"},
    ),
]


class RegisterIn(Strict):
    username: NewUsername
    password: NewPassword
    first_name: PersonName
    last_name: PersonName
    roles: Roles = [STUDENT]
    email: Email | None = None

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
    # Shown to the person (their registration), the registrar and the installation's services;
    # never to another student.
    email: str = Field(description="the given address, or <username>@<AUTH_MAIL_DOMAIN>")


class AccountOut(UserOut):
    disabled: bool = Field(description="a disabled account signs in nowhere; its refresh fails")


class AccountChange(Change):
    """A registrar's change to an account: any of these fields, at least one, none null except
    `email` (null: back to <username>@<AUTH_MAIL_DOMAIN>)."""

    nullable: ClassVar[frozenset[str]] = frozenset({"email"})

    roles: Roles | None = None
    disabled: bool | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    email: Email | None = None


class PasswordIn(Strict):
    password: NewPassword


class LogoutIn(RefreshIn):
    """The session to end: its current refresh token."""


AccountAction = Literal[
    "account.create",
    "account.roles",
    "account.names",
    "account.email",
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
