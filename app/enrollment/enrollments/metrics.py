"""The enrollment service's business metrics (prometheus-client; exposed at /metrics with the
HTTP ones, app/common/observe.py). Each counts what a committed transaction did: a change is
counted once its transaction has committed (`on_commit`), a refusal when it is answered."""

from prometheus_client import Counter

ENROLL_OUTCOMES = Counter(
    "enroll_outcomes",
    "Enroll requests by outcome: enrolled, waitlisted, or the 409 code that refused them.",
    ["result"],
)
DROPS = Counter(
    "enrollment_drops",
    "Places given up: a student's drop (dropped), an administrative drop, a waitlist left.",
    ["reason"],
)
PROMOTIONS = Counter("waitlist_promotions", "Waitlisted students given a freed seat.")
PROMOTION_SKIPS = Counter(
    "waitlist_promotion_skips",
    "Promotions not made: `frozen` (a seat freed in a frozen section, nobody promoted), or the"
    " eligibility rule that skipped a waitlisted student.",
    ["reason"],
)
