"""An instructor reads the email address of a student of theirs (issue 28: a roster with names
and emails): GET /users/{id} to staff carries the address as the auth service has it, asked of
it service to service (app/enrollment/people/directory.py); never to a student, nor to an
instructor for someone else's student, and null when the auth service cannot be asked."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings
from tests.enrollment.helpers import AVA, KAVERY, LCHEN, LIAM, REGISTRAR, Api, make_secret_file

ACCOUNTS = {
    9: {"id": 9, "username": "ajohnson", "first_name": "Ava", "last_name": "Johnson",
        "roles": ["student"], "email": "ava.j@mail.example.org"},
}  # fmt: skip


class FakeAuth(BaseHTTPRequestHandler):
    """The auth service's internal account route, for accounts in ACCOUNTS (404 otherwise)."""

    asked: list[str] = []

    def do_GET(self) -> None:
        FakeAuth.asked.append(self.path)
        account = ACCOUNTS.get(int(self.path.rsplit("/", 1)[1]))
        body = json.dumps(account or {"detail": "not found"}).encode()
        self.send_response(200 if account else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_with_auth(tmp_path) -> Iterator[Api]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeAuth.asked = []
    try:
        db_path = tmp_path / "enroll.db"
        init_db(db_path)
        secret_file = make_secret_file(tmp_path)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = Settings(database=db_path, gateway_secret_file=secret_file, auth_urls=url)
        with TestClient(create_app(settings)) as client:
            yield Api(client, secret_file.read_text(), db_path)
    finally:
        server.shutdown()
        server.server_close()


def test_the_instructor_and_the_registrar_read_a_students_email(api_with_auth):
    by_instructor = api_with_auth.as_(KAVERY).get("/users/9")
    by_registrar = api_with_auth.as_(REGISTRAR).get("/users/9")

    assert by_instructor.status_code == 200
    assert by_instructor.json()["email"] == "ava.j@mail.example.org"
    assert by_registrar.json()["email"] == "ava.j@mail.example.org"


def test_a_student_is_shown_no_address_and_costs_no_lookup(api_with_auth):
    own = api_with_auth.as_(AVA).get("/users/9")

    assert own.status_code == 200 and own.json()["email"] is None
    assert FakeAuth.asked == []


def test_an_instructor_of_other_sections_is_refused_before_anything_is_asked(api_with_auth):
    refused = api_with_auth.as_(LCHEN).get("/users/9")  # Ava is in none of lchen's sections

    assert refused.status_code == 403
    assert FakeAuth.asked == []


def test_an_account_the_auth_service_does_not_know_has_no_address(api_with_auth):
    liam = api_with_auth.as_(KAVERY).get(f"/users/{LIAM[0]}")  # on KAVERY's roster

    assert liam.status_code == 200 and liam.json()["email"] is None


def test_without_the_auth_service_the_address_is_null(api):
    assert api.as_(KAVERY).get("/users/9").json()["email"] is None
