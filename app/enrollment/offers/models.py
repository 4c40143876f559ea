"""Seat offers as the API shows them."""

from typing import Literal

from pydantic import BaseModel, Field

OfferStatus = Literal["open", "accepted", "declined", "expired", "withdrawn"]


class OfferOut(BaseModel):
    id: int
    section_id: int
    course_code: str
    section_number: int
    user_id: int
    enrollment_id: int = Field(description="the waitlist place the seat is held for")
    status: OfferStatus = Field(
        description="open until accepted, declined or expired; withdrawn when the waitlist"
        " place ended otherwise (left, removed, section deleted)"
    )
    offered_at: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.sssZ")
    expires_at: str = Field(description="the claim deadline: accept before it")
    closed_at: str | None
