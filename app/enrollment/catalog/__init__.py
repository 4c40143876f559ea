"""Catalog: the courses and their sections, searched and listed; who teaches a section."""
