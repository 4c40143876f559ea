"""Audit: the trail of what the registrar and instructors did, each entry written in the
transaction of the action it records."""
