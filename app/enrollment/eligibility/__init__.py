"""Eligibility: the rules checked before a student is given a seat or a waitlist place (README
"Eligibility rules"): the account is a student's, holds, the term's add deadline and registration
windows, prerequisites and completed courses, time conflicts, credit limits; and the permits that
waive some of them."""
