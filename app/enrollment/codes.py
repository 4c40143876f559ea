"""Every error `code` the enrollment service answers with, by status, with what it means: those
both services share (app/common/errors.py) and this service's own. A route declares the codes
it can answer from here (`refuses=`, app/enrollment/routing.py); tests/test_error_codes.py holds
every raise site to this catalog and every route's declaration to the codes its code can raise.
"""

from app.common.errors import COMMON_CODES, Catalog

CODES: Catalog = {
    **COMMON_CODES,
    (401, "unauthenticated"): "no usable identity: the identity headers the gateway sets are"
    " missing or malformed",
    (403, "forbidden"): "the caller's role may not call this route, or the records are another"
    " user's (a user's own are theirs and the registrar's; a section's, its staff's)",
    (409, "identity_conflict"): "the username of the caller's token belongs to another user id",
    # enroll (SPEC §2 rules 1-3) and the eligibility rules, in the order they are checked
    (409, "already_enrolled"): "the student holds a seat in this section already",
    (409, "already_waitlisted"): "the student is on this section's waitlist already",
    (409, "not_a_student"): "the account is not a student's: only students take seats, waitlist"
    " places and permits",
    (409, "hold"): "the student has a hold (its reason named); the registrar lifts holds",
    (409, "add_deadline_passed"): "the term's add deadline has passed",
    (409, "registration_window_closed"): "none of the student's registration windows for the"
    " term is open now (the detail says when their next one opens)",
    (409, "prerequisite_missing"): "a prerequisite of the course is not among the student's"
    " completed courses (each named)",
    (409, "time_conflict"): "the section meets at the same time as a section the student holds"
    " (named)",
    (409, "credit_limit"): "the course's credits would take the student over their credit limit"
    " for the term",
    (409, "waitlist_full"): "the section is full and so is its waitlist",
    (409, "waitlist_limit_reached"): "the section is full and the student is on as many"
    " waitlists as allowed (3)",
    (409, "no_seat_free"): "a swap's section has no free seat and the swap did not accept a"
    " waitlist place (`waitlist_ok`): nothing changed",
    # seat offers (a section in `offer` waitlist mode)
    (409, "offer_closed"): "the seat offer was accepted, declined, withdrawn or expired already"
    " (its status named)",
    (409, "offer_expired"): "the seat offer's claim deadline has passed (named): the seat goes"
    " to the next student",
    # drops and a section's changes (rules 4-8)
    (409, "drop_deadline_passed"): "the term's drop deadline has passed; the registrar can still"
    " drop",
    (409, "capacity_below_enrollment"): "the new capacity is below the seats taken (seats held"
    " by open offers included)",
    (409, "waitlist_capacity_below_waitlist"): "the new waitlist capacity is below the places"
    " taken",
    (409, "not_an_instructor"): "the user named to teach the section does not hold the"
    " instructor role",
    # the catalog, terms, holds, permits and prerequisites
    (409, "course_exists"): "a course with this code exists already",
    (409, "section_exists"): "the course has a section with this number already",
    (409, "term_exists"): "a term with this code exists already",
    (409, "hold_lifted"): "the hold was lifted already",
    (409, "permit_revoked"): "the permit was revoked already",
    (409, "prerequisite_cycle"): "the course would need itself, directly or through other courses",
    # the CSV import of completed courses
    (422, "csv_encoding"): "the CSV is not UTF-8 text",
    (422, "csv_header"): "the CSV's first line does not name its columns,"
    " user_id,course_code[,term][,grade], each once",
    (422, "csv_too_long"): "the CSV has more rows than one import takes (50,000)",
    (422, "csv_empty"): "the CSV has no rows after its header line",
    (422, "csv_rows"): "rows of the CSV are bad (each named by its line): nothing was imported",
}
