"""The role names live in app/common/identity.py; the auth schema's CHECK and the web app's views
name them too. A role renamed or added in one place and not the others would refuse every row
of it (the schema) or hide a whole view (the web app): these tests hold them together."""

import re
import sqlite3

from app.common.identity import ROLES
from harness.procs import ROOT

AUTH_SCHEMA = ROOT / "share" / "auth" / "schema.sql"
WEB_APP = ROOT / "share" / "web" / "js" / "app.js"


def test_the_auth_schema_admits_exactly_the_roles_of_identity():
    conn = sqlite3.connect(":memory:")
    conn.executescript(AUTH_SCHEMA.read_text())
    conn.execute("INSERT INTO users (id, username, password_hash, first_name, last_name)"
                 " VALUES (1, 'someone', 'x', 'Some', 'One')")  # fmt: skip

    def admitted(role: str) -> bool:
        try:
            conn.execute("INSERT INTO user_roles (user_id, role) VALUES (1, ?)", (role,))
        except sqlite3.IntegrityError:
            return False
        return True

    assert [role for role in ROLES if admitted(role)] == list(ROLES)
    for other in ("admin", "Student", "students", ""):
        assert not admitted(other), other


def test_the_web_apps_views_name_only_roles_of_identity_and_serve_each():
    views = re.search(r"const VIEWS = \[(.*?)\n\];", WEB_APP.read_text(), re.S)
    assert views, "app.js has no VIEWS table"
    named = set(re.findall(r'role: "([a-z]+)"', views.group(1)))

    assert named == set(ROLES)
