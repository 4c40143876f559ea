"""Notifications (issue 27): the outbox a change writes to in its own transaction, the person's
list of them, and what the notifier (app/notifier) reads and marks."""
