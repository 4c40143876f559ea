"""Notifications as the API shows them."""

from typing import Literal

from pydantic import BaseModel, Field

from app.common.models import Id, Strict

NotificationKind = Literal[
    "enrolled",
    "waitlisted",
    "promoted",
    "dropped_by_staff",
    "hold_placed",
    "hold_lifted",
    "section_deleted",
    "offered",
    "offer_expired",
    "swapped",
]


class NotificationOut(BaseModel):
    id: int
    user_id: int
    kind: NotificationKind
    section_id: int | None = Field(description="the section it is about; null for a hold")
    subject: str
    body: str
    created_at: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.sssZ")
    read: bool
    delivered: bool = Field(description="the mail server has accepted the email of it")


class ReadIn(Strict):
    """Mark one notification read (true) or unread again (false)."""

    read: bool


class ReadUpToIn(Strict):
    """Mark every notification up to this id (the newest the person has seen) read."""

    read_up_to: Id


class ReadCount(BaseModel):
    marked: int = Field(description="how many were unread and are read now")
    unread: int = Field(description="how many are still unread")


class UndeliveredOut(BaseModel):
    """An event the notifier has not delivered yet, for the registrar."""

    id: int
    user_id: int
    kind: NotificationKind
    section_id: int | None
    subject: str
    created_at: str
    attempts: int = Field(description="failed delivery attempts so far")
    next_attempt: float = Field(description="Unix time of the next attempt")
    last_error: str | None = Field(description="why the last attempt failed")
