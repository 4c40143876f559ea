"""The demo data as tests and benchmarks sign in with it."""

# Every seed user's password (README "Demo data"); share/auth/seed_passwords.json holds only their
# hashes. The one copy the tests and benchmarks use.
DEMO_PASSWORD = "registrar-day-2026"
