"""Seat offers with a claim window (issue 27): in a section whose waitlist mode is `offer`, a
freed seat is held for the student first in line, who accepts or declines it before it expires."""
