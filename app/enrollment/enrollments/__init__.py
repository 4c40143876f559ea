"""Enrollments: seats and waitlists (SPEC §2 rules 1-8): enroll, drop, leave a waitlist, the
promotion from a waitlist, and what a section's changes (freeze, capacity, delete) do to them."""
