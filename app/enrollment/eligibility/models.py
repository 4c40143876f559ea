"""Holds, permits, prerequisites, completed courses and credit limits as the API takes and shows
them."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from app.common.models import Id, Printable, Strict, text_bounds

Waiver = Literal["capacity", "prerequisite", "time_conflict", "credit_limit", "window"]
HoldReason = Annotated[str, text_bounds(200, min_length=1, strip=True), Printable]


class HoldIn(Strict):
    reason: HoldReason


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
