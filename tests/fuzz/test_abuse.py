"""Input abuse against both services: SQL injection in every string field, path and query
parameter and identity header; bodies of 1 MB and 10 MB (declared, streamed without a length,
endless, and through a real uvicorn); JSON nested 10,000 deep; bytes that are not UTF-8; numbers
no column can hold.

Each answer is a 4xx in the one error shape, and the database dump (every table, every row) is
byte for byte what it was. The one exception is a string that a field legitimately keeps as text
(a course title, a section's room, a person's name, a password): it may be accepted, and then it
is stored verbatim and the request added exactly the rows it should, nothing else. No 5xx: the
TestClient re-raises any exception the app did not handle, RecursionError included.

Last run: 1,801 abusive inputs (enrollment 1,450, auth 351), 128 of them plain text stored
verbatim, the rest refused with the database unchanged; 17 s. Each run prints its own counts at
the end ("abuse: ...").
"""

import asyncio
import json
import os
import select
import socket
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute

from app.common.limits import MAX_BODY_BYTES
from app.enrollment.routes import CSV_MAX_BODY_BYTES
from app.enrollment.routes import router as enrollment_router
from harness.procs import free_port, start_uvicorn, stop, wait_http
from tests.auth.helpers import DEMO_PASSWORD
from tests.fuzz.helpers import TALLY, Service, auth_app, dump, enrollment_app, rows

SQL_INJECTION = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "'; DELETE FROM enrollments; --",
    '" OR ""="',
    "1; SELECT sqlite_version()",
    "1 UNION SELECT username, password_hash FROM users --",
    "1) OR (1=1",
    "1' AND 1=(SELECT COUNT(*) FROM sqlite_master) --",
    "%27%20OR%201=1",
    "' OR 1=1 /*",
    "admin'--",
    "\\'; DROP TABLE courses; --",
    "' || (SELECT load_extension('evil')) || '",
    "'; ATTACH DATABASE '/tmp/pwned.db' AS pwned; --",
    "' AND randomblob(1000000000) --",
    "\u2019 OR \u20191\u2019=\u20191",  # right single quotation marks
    "\u02bc OR 1=1 --",  # modifier letter apostrophe
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "\x00' OR 1=1 --",
    "1\x00",
]
# What can travel in an HTTP header at all (no NUL, Latin-1 only).
HEADER_SAFE = [p for p in SQL_INJECTION if p.isprintable() and p.isascii()]

# Literal JSON numbers that fit no column: over 64 bits, floats, non-finite, too many digits.
HUGE_NUMBERS = [
    str(2**63),
    str(2**64),
    str(10**100),
    str(-(2**63) - 1),
    "1e308",
    "1e309",
    "-1e308",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 5000,
]
# ... and for fields that must be positive (ids, section numbers), also these.
NOT_POSITIVE = ["-0", "0", "-1"]
# The same in a path or query parameter.
HUGE_IN_URL = [str(2**63), str(2**64), str(10**100), "1e308", "-0", "NaN", "Infinity", "9" * 5000]

ONE_MB, TEN_MB = 1024 * 1024, 10 * 1024 * 1024
DEEP = 10_000

# The fields of every body each service takes: a valid body (`n` keeps names unique), and for
# each field whether it is an id (positive), a count (>= 0), a flag, free text the service
# stores as given, or text it checks against a format.
ID, COUNT, FLAG, STORED, FORMAT, SECRET = "id", "count", "flag", "stored", "format", "secret"
ENROLLMENT_BODIES = {
    ("POST", "/courses"): (
        lambda n: {"department_id": 1, "code": f"ABU {100 + n}", "title": "Abuse", "credits": 3},
        {"department_id": ID, "code": FORMAT, "title": STORED, "credits": COUNT},
    ),
    ("POST", "/sections"): (
        lambda n: {
            "course_id": 2,
            "section_number": 100 + n,
            "instructor_id": 3,
            "capacity": 10,
            "waitlist_capacity": 5,
            "room": "Room 1",
            "schedule": "MW 10:00",
            "waitlist_mode": "offer",
            "claim_seconds": 3600,
        },
        {
            "course_id": ID,
            "section_number": ID,
            "instructor_id": ID,
            "capacity": COUNT,
            "waitlist_capacity": COUNT,
            "room": STORED,
            "schedule": STORED,
            "waitlist_mode": FORMAT,
            "claim_seconds": ID,  # positive, as an id is
        },
    ),
    ("PATCH", "/sections/{section_id}"): (
        lambda n: {
            "freeze": False,
            "instructor_id": 4,
            "capacity": 31,
            "waitlist_capacity": 15,
            "waitlist_mode": "auto",
            "claim_seconds": 60,
        },
        {
            "freeze": FLAG,
            "instructor_id": ID,
            "capacity": COUNT,
            "waitlist_capacity": COUNT,
            "waitlist_mode": FORMAT,
            "claim_seconds": ID,
        },
    ),
    ("POST", "/users/{user_id}/enrollments"): (lambda n: {"section_id": 4}, {"section_id": ID}),
    ("POST", "/users/{user_id}/swaps"): (
        lambda n: {"drop_section_id": 1, "add_section_id": 4, "waitlist_ok": False},
        {"drop_section_id": ID, "add_section_id": ID, "waitlist_ok": FLAG},
    ),
    ("PUT", "/courses/{course_id}/prerequisites"): (
        lambda n: {"course_ids": [3]},
        {"course_ids": FORMAT},  # a list of ids: any text in its place is refused
    ),
    ("PUT", "/users/{user_id}/credit-limit"): (
        lambda n: {"credit_limit": 20},
        {"credit_limit": COUNT},
    ),
    ("POST", "/users/{user_id}/holds"): (lambda n: {"reason": "fees"}, {"reason": STORED}),
    ("POST", "/terms"): (lambda n: {"code": f"T-{n}", "name": "Term"}, {"code": FORMAT}),
    ("PATCH", "/terms/{term_id}"): (lambda n: {"name": "Spring"}, {"add_deadline": FORMAT}),
    ("POST", "/terms/{term_id}/windows"): (
        lambda n: {"opens_at": "2027-01-02T16:00:00Z", "closes_at": "2027-01-03T16:00:00Z"},
        {"opens_at": FORMAT, "closes_at": FORMAT},
    ),
    ("PUT", "/users/{user_id}/class-level"): (
        lambda n: {"class_level": "junior"},
        {"class_level": FORMAT},
    ),
    ("POST", "/sections/{section_id}/permits"): (
        lambda n: {"user_id": 20, "waives": ["capacity"]},
        {"user_id": ID},
    ),
}
AUTH_BODIES = {
    ("POST", "/register"): (
        lambda n: {
            "username": f"abuse.{n}",
            "password": "a-long-enough-password",
            "first_name": "Abuse",
            "last_name": "Case",
        },
        {"username": FORMAT, "password": SECRET, "first_name": STORED, "last_name": STORED},
    ),
    ("POST", "/login"): (
        lambda n: {"username": "ajohnson", "password": DEMO_PASSWORD},
        {"username": FORMAT, "password": FORMAT},
    ),
    ("POST", "/refresh"): (lambda n: {"refresh_token": "x"}, {"refresh_token": FORMAT}),
}
# Ids in paths that exist in the seed: section 4 has free seats, student 9 is in sections 1-2.
VALID_PATH = {
    "course_id": "1",
    "section_id": "4",
    "user_id": "9",
    "hold_id": "1",
    "permit_id": "1",
    "term_id": "2",
    "window_id": "1",
    "notification_id": "1",
    "offer_id": "1",
}
# Where a legitimately stored string lands: (table, column) per field.
STORED_IN = {
    "title": ("courses", "title"),
    "room": ("sections", "room"),
    "schedule": ("sections", "schedule"),
    "first_name": ("users", "first_name"),
    "last_name": ("users", "last_name"),
    "reason": ("holds", "reason"),
}
# The rows a successful create may add, besides the ones it exists for (a hold placed is also
# the student's notification of it, in the same transaction).
BOOKKEEPING = {"audit_log", "notifications", "sqlite_sequence", "user_roles"}


def send(service: Service, name: str, method: str, url: str, **kwargs):
    """One abusive request; counted, and never a 5xx."""
    TALLY[f"abuse {name}"] += 1
    headers = {**service.headers, **kwargs.pop("headers", {})}
    response = service.client.request(method, url, headers=headers, **kwargs)
    assert response.status_code < 500, f"{method} {url}: {response.status_code} {response.text}"
    return response


def assert_refused(response, service: Service, before: str, *statuses: int) -> dict:
    """A 4xx (one of `statuses` if given) in the one error shape, and nothing changed."""
    request = f"{response.request.method} {response.request.url}"
    assert 400 <= response.status_code < 500, f"{request}: {response.status_code}"
    if statuses:
        assert response.status_code in statuses, f"{request}: {response.text}"
    body = response.json()
    assert isinstance(body["detail"], str) and isinstance(body["code"], str), body
    assert dump(service.database) == before, f"{request} changed the database"
    return body


def json_with(body: dict, field: str, literal: str) -> bytes:
    """`body` as JSON text with `field` set to a raw JSON literal (NaN, 1e309, 10**5000...)."""
    return (
        json.dumps({**body, field: "\x00here\x00"})
        .replace('"\\u0000here\\u0000"', literal)
        .encode()
    )


def post_json(service: Service, name: str, method: str, url: str, content: bytes):
    headers = {"content-type": "application/json"}
    return send(service, name, method, url, content=content, headers=headers)


# SQL injection: path and query parameters


# Query parameters that are free text to search for (GET /sections?q=): any text is a search.
SEARCH_TEXT = {"q"}


def enrollment_parameters() -> Iterator[tuple[str, str, str, str, dict | None]]:
    """Every path and query parameter of every enrollment route: (method, path, where, name,
    a valid body), read from the routes themselves so that a new one is covered too."""
    for route in enrollment_router.routes:
        if not isinstance(route, APIRoute):
            continue
        method = next(iter(route.methods))
        make, _ = ENROLLMENT_BODIES.get((method, route.path), (lambda n: None, None))
        body = make(0)
        for param in route.dependant.path_params:
            yield method, route.path, "path", param.name, body
        for param in route.dependant.query_params:  # as a request names it (GET /holds?open=)
            yield method, route.path, "query", param.alias, body


def test_sql_injection_in_every_enrollment_parameter(enrollment):
    parameters = list(enrollment_parameters())
    names = {"course_id", "section_id", "user_id", "status", "type", "action", "limit"}
    assert names <= {name for _, _, _, name, _ in parameters}
    before = dump(enrollment.database)
    for method, path, where, name, body in parameters:
        for payload in SQL_INJECTION:
            url = path.format(**VALID_PATH)
            if where == "path":
                url = path.format(**{**VALID_PATH, name: quote(payload, safe="")})
            params = {name: payload} if where == "query" else None
            response = send(enrollment, "enrollment", method, url, params=params, json=body)
            if name in SEARCH_TEXT and payload.isprintable():
                # Searched for as text: it matches no course and changes nothing. (A control
                # character is refused like any other bad value, below.)
                assert (response.status_code, response.json()) == (200, []), payload
                assert dump(enrollment.database) == before
                continue
            # A "/" in the value (%2F) makes another path, which no route has: 404.
            error = assert_refused(response, enrollment, before, 404, 422)
            assert response.status_code == 404 or error["errors"][0]["field"] == name, error


# SQL injection: body fields


def test_sql_injection_in_every_enrollment_body_field(enrollment):
    n = 0
    for (method, path), (make, fields) in ENROLLMENT_BODIES.items():
        for field, kind in fields.items():
            for payload in SQL_INJECTION:
                n += 1
                before, before_rows = dump(enrollment.database), rows(enrollment.database)
                body = {**make(n), field: payload}
                url = path.format(**VALID_PATH)
                response = send(enrollment, "enrollment", method, url, json=body)
                if kind == STORED and response.status_code == 201:
                    assert response.json()[field] == payload
                    assert_stored_verbatim(enrollment, before_rows, field, payload)
                else:
                    error = assert_refused(response, enrollment, before, 422)
                    assert field in error["detail"], error


def assert_stored_verbatim(service: Service, before: dict, field: str, payload: str) -> None:
    """The create added one row holding `payload` verbatim, and only bookkeeping besides."""
    table, column = STORED_IN[field]
    after = rows(service.database)
    added, removed = after - before, before - after
    assert {row[0] for row in removed} <= {"sqlite_sequence"}, removed
    assert {row[0] for row in added} <= {table} | BOOKKEEPING, added
    (row,) = [row for row in added if row[0] == table]
    assert row[1 + columns(service.database, table).index(column)] == payload
    TALLY["abuse stored verbatim"] += 1


def columns(database: Path, table: str) -> list[str]:
    conn = sqlite3.connect(database)
    try:
        return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    finally:
        conn.close()


def test_sql_injection_in_identity_headers(enrollment):
    """The gateway sets these from a verified token; still, nothing in them reaches SQL as SQL."""
    before = dump(enrollment.database)
    for payload in HEADER_SAFE:
        for header in ("X-User-Id", "X-User-Roles"):
            response = send(enrollment, "enrollment", "GET", "/courses", headers={header: payload})
            assert_refused(response, enrollment, before, 401)
    for n, payload in enumerate(HEADER_SAFE):
        # A username the gateway vouches for is kept as given, under the caller's own id.
        before_rows = rows(enrollment.database)
        headers = {"X-User-Id": str(500 + n), "X-User-Name": payload, "X-User-Roles": "student"}
        response = send(enrollment, "enrollment", "GET", "/courses", headers=headers)
        assert response.status_code == 200, response.text
        added = rows(enrollment.database) - before_rows
        assert added == {("users", 500 + n, payload, "", "", "student", None, None): 1}, added
        TALLY["abuse stored verbatim"] += 1


def test_sql_injection_in_every_auth_field(auth):
    n = 0
    for (method, url), (make, fields) in AUTH_BODIES.items():
        for field, kind in fields.items():
            for payload in SQL_INJECTION:
                n += 1
                before, before_rows = dump(auth.database), rows(auth.database)
                body = {**make(n), field: payload}
                response = send(auth, "auth", method, url, json=body)
                if response.status_code == 201 and kind == STORED:
                    assert response.json()[field] == payload.strip()
                    assert_stored_verbatim(auth, before_rows, field, payload.strip())
                elif response.status_code == 201 and kind == SECRET:
                    # Kept only as a hash, and that hash takes exactly this password.
                    stored = [v for row in rows(auth.database) for v in row if isinstance(v, str)]
                    assert not any(payload in value for value in stored)
                    login = {"username": body["username"], "password": payload}
                    assert send(auth, "auth", "POST", "/login", json=login).status_code == 200
                    login["password"] = payload + " "
                    assert send(auth, "auth", "POST", "/login", json=login).status_code == 401
                    TALLY["abuse stored verbatim"] += 1
                else:
                    assert_refused(response, auth, before, 401, 422)


def test_sql_injection_in_the_authorization_header(auth):
    before = dump(auth.database)
    make, _ = AUTH_BODIES["POST", "/register"]
    body = {**make(0), "roles": ["instructor"]}
    for payload in HEADER_SAFE:
        for value in (f"Bearer {payload}", payload):
            headers = {"Authorization": value}
            response = send(auth, "auth", "POST", "/register", json=body, headers=headers)
            assert_refused(response, auth, before, 401)


# oversized bodies


# Writes that take no body: a body sent anyway is still limited, unread.
BODILESS_WRITES = {
    "enrollment": [
        ("POST", "/users/{user_id}/offers/{offer_id}/accept"),
        ("POST", "/users/{user_id}/offers/{offer_id}/decline"),
    ],
    "auth": [],
}


def every_body_route(name: str) -> list[tuple[str, str]]:
    """(method, url) of each route that takes a body, and one that takes none."""
    routes = ENROLLMENT_BODIES if name == "enrollment" else AUTH_BODIES
    urls = [(method, path.format(**VALID_PATH)) for method, path in routes]
    return [*urls, ("GET", "/courses" if name == "enrollment" else "/.well-known/jwks.json")]


def big_json(size: int) -> bytes:
    """A syntactically valid JSON object of `size` bytes."""
    head = b'{"title": "'
    return head + b"a" * (size - len(head) - 2) + b'"}'


def assert_too_large(response, service: Service, before: str, limit: int = MAX_BODY_BYTES) -> None:
    error = assert_refused(response, service, before, 413)
    assert error["code"] == "body_too_large"
    assert f"{limit // 1024} KiB" in error["detail"], error


@pytest.mark.parametrize("size", [ONE_MB, TEN_MB], ids=["1MB", "10MB"])
@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_oversized_bodies_are_413(request, name, size):
    service: Service = request.getfixturevalue(name)
    before, body = dump(service.database), big_json(size)
    bodiless = [(method, path.format(**VALID_PATH)) for method, path in BODILESS_WRITES[name]]
    for method, url in [*every_body_route(name), *bodiless]:
        response = post_json(service, name, method, url, body)
        assert_too_large(response, service, before)


@pytest.mark.parametrize("size", [CSV_MAX_BODY_BYTES + 1, TEN_MB], ids=["just over", "10MB"])
def test_an_oversized_csv_import_is_413(enrollment, size):
    """The import's own limit (app/enrollment/routes.py: 50,000 rows fit), not the common one."""
    before = dump(enrollment.database)
    csv = b"user_id,course_code\n" + b"9,CPSC 131\n" * (size // 11 + 1)
    response = send(enrollment, "enrollment", "POST", "/completed-courses", content=csv,
                    headers={"Content-Type": "text/csv"})  # fmt: skip
    assert_too_large(response, enrollment, before, CSV_MAX_BODY_BYTES)


@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_streamed_and_endless_bodies_are_413(request, name):
    """Without a Content-Length (chunked), the limit counts the bytes as they arrive, and stops
    reading an endless body just past the limit."""
    service: Service = request.getfixturevalue(name)
    before = dump(service.database)
    headers = [(k.lower().encode(), v.encode()) for k, v in service.headers.items()]
    for method, url in every_body_route(name):
        for chunks in (chunked(big_json(ONE_MB)), chunked(big_json(TEN_MB)), endless()):
            TALLY[f"abuse {name}"] += 1
            status, body, read = asgi_request(service.client.app, method, url, headers, chunks)
            assert status == 413, body
            assert json.loads(body)["code"] == "body_too_large"
            assert read <= MAX_BODY_BYTES + 2 * CHUNK, f"read {read} bytes of an oversized body"
            assert dump(service.database) == before


@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_a_content_length_that_is_no_byte_count_is_400(request, name):
    """uvicorn refuses these itself; the middleware must not trust them either."""
    service: Service = request.getfixturevalue(name)
    before = dump(service.database)
    headers = [(k.lower().encode(), v.encode()) for k, v in service.headers.items()]
    method, url = every_body_route(name)[0]
    for lengths in ([b"abc"], [b"-1"], [b"1e3"], [b"2", b"3"]):
        TALLY[f"abuse {name}"] += 1
        framing = [(b"content-length", length) for length in lengths]
        status, body, _ = asgi_request(service.client.app, method, url, headers, [b"{}"], framing)
        assert (status, json.loads(body)["code"]) == (400, "bad_request"), body
        assert dump(service.database) == before


CHUNK = 16 * 1024


def chunked(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def endless() -> Iterator[bytes]:
    yield b'{"title": "'
    while True:
        yield b"a" * CHUNK


def asgi_request(
    app,
    method: str,
    path: str,
    headers: list,
    chunks: Iterable[bytes],
    framing: list | None = None,
) -> tuple[int, bytes, int]:
    """Drive the ASGI app directly, streaming `chunks` as the request body (chunked, unless
    `framing` says otherwise): (status, response body, bytes of the request body read)."""
    stream, read, sent = iter(chunks), 0, []

    async def receive():
        nonlocal read
        chunk = next(stream, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            *headers,
            (b"content-type", b"application/json"),
            *(framing or [(b"transfer-encoding", b"chunked")]),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


# deeply nested JSON, bytes that are not UTF-8


def nested(depth: int) -> list[bytes]:
    return [
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,  # 60 kB at 10,000 deep: under the size limit
    ]


NOT_UTF8 = [
    b'{"title": "caf\xe9"}',  # Latin-1
    b'{"section_id": 4, "x": "\xff\xfe"}',
    b"\xc3\x28",  # a broken two-byte sequence
    b'{"username": "\xc0\xaf"}',  # an overlong "/"
    b'{"title": "\xed\xa0\x80"}',  # a UTF-16 surrogate, encoded (json lets it through)
    b"\xf8\x88\x80\x80\x80",  # five bytes: no such UTF-8
    b"\x80",
    b"\xfe\xff\x00{",
]


@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_deep_json_and_broken_utf8_are_422(request, name):
    service: Service = request.getfixturevalue(name)
    before = dump(service.database)
    bodies = ENROLLMENT_BODIES if name == "enrollment" else AUTH_BODIES
    for (method, path), (make, fields) in bodies.items():
        url, field = path.format(**VALID_PATH), next(iter(fields))
        deep = [
            *nested(DEEP),
            *nested(900),  # under Python's recursion limit: parsed, then refused by the model
            *(json_with(make(0), field, value.decode()) for value in nested(DEEP)),
        ]
        for content in deep:
            response = post_json(service, name, method, url, content)
            assert_refused(response, service, before, 422)
        for content in NOT_UTF8:
            response = post_json(service, name, method, url, content)
            assert assert_refused(response, service, before, 422)["code"] == "validation_error"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * DEEP + b"]" * DEEP, "nested too deeply"),
        (b'{"section_id": ' + b"9" * 5000 + b"}", "a number with too many digits"),
        (b'{"section_id": "\xff"}', "not UTF-8 text"),
    ],
    ids=["deep", "digits", "latin-1"],
)
@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_a_body_json_cannot_read_is_422_naming_the_body(request, name, content, reason):
    """Regression: FastAPI answered these with a bare 400 ("There was an error parsing the
    body"), which no route declares; schemathesis's status_code_conformance found it."""
    service: Service = request.getfixturevalue(name)
    before = dump(service.database)
    method, url = every_body_route(name)[-2]
    error = assert_refused(post_json(service, name, method, url, content), service, before, 422)
    assert error["errors"] == [
        {"field": "body", "in": "body", "message": f"malformed JSON: {reason}"}
    ], error


# numbers no column can hold


@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_huge_numbers_in_bodies_are_422(request, name):
    service: Service = request.getfixturevalue(name)
    before = dump(service.database)
    bodies = ENROLLMENT_BODIES if name == "enrollment" else AUTH_BODIES
    for (method, path), (make, fields) in bodies.items():
        url = path.format(**VALID_PATH)
        for field, kind in fields.items():
            numbers = HUGE_NUMBERS + (NOT_POSITIVE if kind == ID else [])
            for literal in numbers:
                response = post_json(service, name, method, url, json_with(make(0), field, literal))
                error = assert_refused(response, service, before, 422)
                assert error["errors"][0]["field"] in (field, "body"), error


def test_huge_numbers_in_enrollment_paths_and_queries_are_422(enrollment):
    before = dump(enrollment.database)
    for method, path, where, name, body in enrollment_parameters():
        if name in ("status", "type", "action", *SEARCH_TEXT):
            continue  # not numbers: the SQL injection test covers them
        for value in HUGE_IN_URL:
            url = path.format(**VALID_PATH)
            if where == "path":
                url = path.format(**{**VALID_PATH, name: value})
            params = {name: value} if where == "query" else None
            response = send(enrollment, "enrollment", method, url, params=params, json=body)
            error = assert_refused(response, enrollment, before, 422)
            assert error["errors"][0]["field"] == name, error


# the same limits on a real server: uvicorn's own HTTP parsing, sockets, chunked encoding


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, tuple[int, Path]]]:
    """Both services under uvicorn on loopback ports: {name: (port, database)}."""
    root = tmp_path_factory.mktemp("servers")
    _, enroll_db, _ = enrollment_app(root / "enroll")
    _, auth_db = auth_app(root / "auth")
    ports = {"enrollment": free_port(), "auth": free_port()}
    clean = {k: "" for k in os.environ if k.startswith(("AUTH_", "ENROLL_"))}
    env = {
        "enrollment": {
            **clean,
            "ENROLL_DATABASE": str(enroll_db),
            "ENROLL_GATEWAY_SECRET_FILE": str(root / "enroll" / "gateway.secret"),
        },
        "auth": {
            **clean,
            "AUTH_DATABASE": str(auth_db),
            "AUTH_PRIVATE_JWKS": str(root / "auth" / "auth" / "private.jwks.json"),
        },
    }
    factories = {"enrollment": "app.enrollment.main:create_app", "auth": "app.auth.main:create_app"}
    procs: list[subprocess.Popen] = []
    try:
        for name, port in ports.items():
            procs.append(start_uvicorn(factories[name], port, env[name], root / f"{name}.log"))
            wait_http(f"http://127.0.0.1:{port}/openapi.json", procs[-1])
        yield {"enrollment": (ports["enrollment"], enroll_db), "auth": (ports["auth"], auth_db)}
    finally:
        stop(procs)
    for name in ports:
        log = (root / f"{name}.log").read_text()
        assert "Traceback" not in log and "Exception" not in log, log


@pytest.mark.parametrize("size", [ONE_MB, TEN_MB], ids=["1MB", "10MB"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("name", ["enrollment", "auth"])
def test_oversized_bodies_through_uvicorn(servers, name, framing, size):
    port, database = servers[name]
    before = dump(database)
    method, url = every_body_route(name)[0]
    TALLY[f"abuse {name}"] += 1
    status, body = raw_request(
        port, method, url, big_json(size), chunked_framing=framing == "chunked"
    )
    assert status == 413, body
    error = json.loads(body)
    assert error["code"] == "body_too_large" and "64 KiB" in error["detail"], error
    assert dump(database) == before


def raw_request(
    port: int, method: str, url: str, body: bytes, *, chunked_framing: bool
) -> tuple[int, bytes]:
    """Send a request over a plain socket, as a client that stops sending once the server has
    answered (as curl does); return the status and the response body."""
    framing = (
        b"Transfer-Encoding: chunked"
        if chunked_framing
        else f"Content-Length: {len(body)}".encode()
    )
    head = (
        (
            f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        + framing
        + b"\r\n\r\n"
    )
    pieces = (
        (b"%x\r\n%s\r\n" % (len(c), c) for c in chunked(body)) if chunked_framing else chunked(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is in: stop sending
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        response = b""
        while b"\r\n\r\n" not in response or len(response) < expected_length(response):
            part = sock.recv(65536)
            if not part:
                break
            response += part
    head, _, content = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), content


def expected_length(response: bytes) -> int:
    head, _, _ = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 0
