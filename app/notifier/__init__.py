"""The notifier (issue 27): delivers the enrollment database's notifications outbox by SMTP."""
