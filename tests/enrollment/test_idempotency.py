"""Idempotency-Key on the enrollment service's writes (issue 26; app/common/idempotency.py): a
retry with the key gets the first answer again and never the change twice; the same key for
another request is 422; keys are the caller's own; records expire after the TTL; a retry
racing the first, over three real processes on one database, waits and replays."""

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from app.common import idempotency
from harness.enroll_cluster import EnrollmentCluster
from harness.loadclient import burst
from tests.enrollment.helpers import AVA, LIAM, REGISTRAR, identity_headers, make_secret_file
from tests.enrollment.test_rules import new_section

KEY = "7c0f9f3e-4a2b-4f0e-9d1c-2b7e5c8a1d34"


def keyed(key: str = KEY) -> dict[str, str]:
    return {idempotency.HEADER: key}


def enroll(api, who: tuple, section_id: int, key: str | None = KEY, **body):
    headers = keyed(key) if key is not None else {}
    return api.as_(who).post(
        f"/users/{who[0]}/enrollments", json={"section_id": section_id, **body}, headers=headers
    )


def rows_of(api, user_id: int, section_id: int) -> list[tuple]:
    with api.db() as conn:
        found = conn.execute(
            "SELECT status FROM enrollments WHERE user_id = ? AND section_id = ? ORDER BY id",
            (user_id, section_id),
        ).fetchall()
    return [tuple(row) for row in found]


def records(api) -> list[sqlite3.Row]:
    with api.db() as conn:
        return conn.execute("SELECT * FROM idempotency_keys ORDER BY id").fetchall()


def test_a_retry_with_the_same_key_gets_the_first_answer_and_changes_nothing(api):
    section = new_section(api, capacity=5)
    first = enroll(api, LIAM, section)
    again = enroll(api, LIAM, section)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert idempotency.REPLAYED_HEADER.lower() not in first.headers
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert rows_of(api, LIAM[0], section) == [("enrolled",)]
    (stored,) = records(api)
    assert (stored["caller"], stored["key"], stored["method"], stored["status"]) == (
        "user:10",
        KEY,
        "POST",
        201,
    )
    assert stored["path"] == "/users/10/enrollments" and stored["body"] == first.content


def test_a_replay_is_the_first_answer_whatever_has_happened_since(api):
    """The key names one attempt: after a drop, its retry still says what the attempt did,
    and does not enroll again."""
    section = new_section(api, capacity=5)
    first = enroll(api, LIAM, section)
    dropped = api.as_(LIAM).delete(f"/users/10/enrollments/{section}", headers=keyed("drop-1"))
    assert dropped.status_code == 200
    again = enroll(api, LIAM, section)
    assert (again.status_code, again.content) == (201, first.content)
    assert rows_of(api, LIAM[0], section) == [("dropped",)]


def test_the_same_body_written_otherwise_is_the_same_request(api):
    """The digest is of the canonical JSON: key order and spaces do not make another request."""
    section = new_section(api, capacity=5)
    first = enroll(api, LIAM, section)
    again = api.as_(LIAM).post(
        "/users/10/enrollments",
        content=f'{{ "section_id" : {section} }}',
        headers={**keyed(), "Content-Type": "application/json"},
    )
    assert (again.status_code, again.content) == (201, first.content)


@pytest.mark.parametrize(
    "other",
    [
        lambda api, section, other: enroll(api, LIAM, other),  # another body
        lambda api, section, other: api.as_(LIAM).delete(  # another method and path
            f"/users/10/enrollments/{section}", headers=keyed()
        ),
    ],
    ids=["other body", "other route"],
)
def test_the_same_key_for_another_request_is_422_and_does_nothing(api, other):
    section, second = new_section(api, capacity=5), new_section(api, capacity=5, number=51)
    assert enroll(api, LIAM, section).status_code == 201
    before = api.dump()
    refused = other(api, section, second)
    assert refused.status_code == 422
    assert refused.json()["code"] == "idempotency_key_reused"
    assert "POST /users/10/enrollments" in refused.json()["detail"]
    assert api.dump() == before


def test_keys_are_the_callers_own(api):
    """Another caller with the same key makes their own request and gets their own answer: no
    one can read, or be refused by, another's key."""
    section = new_section(api, capacity=5)
    liam = enroll(api, LIAM, section)
    ava = enroll(api, AVA, section)
    assert liam.status_code == ava.status_code == 201
    assert idempotency.REPLAYED_HEADER.lower() not in ava.headers
    assert ava.json()["user_id"] == 9 and liam.json()["user_id"] == 10
    # The registrar enrolling Liam with Liam's key is the registrar's own request: it runs (409,
    # Liam holds the seat), it is not Liam's answer replayed.
    registrar = api.as_(REGISTRAR).post(
        "/users/10/enrollments", json={"section_id": section}, headers=keyed()
    )
    assert (registrar.status_code, registrar.json()["code"]) == (409, "already_enrolled")
    assert {r["caller"] for r in records(api)} == {"user:10", "user:9", "user:1"}


def test_a_refusal_the_write_decided_is_recorded_and_replayed(api):
    """As Stripe does: one key, one attempt, one outcome. The refusal's change is undone, the
    record kept; a new key is a new attempt."""
    section = new_section(api, capacity=1, waitlist_capacity=0)
    assert enroll(api, AVA, section, key=None).status_code == 201
    full = enroll(api, LIAM, section)
    assert (full.status_code, full.json()["code"]) == (409, "waitlist_full")
    assert api.as_(AVA).delete(f"/users/9/enrollments/{section}").status_code == 200
    again = enroll(api, LIAM, section)
    assert (again.status_code, again.content) == (409, full.content)
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert rows_of(api, LIAM[0], section) == []
    assert enroll(api, LIAM, section, key="a-new-attempt").status_code == 201


def test_a_request_refused_before_its_write_records_nothing(api):
    """A body that is not valid is refused before anything is decided: the same key then takes
    the corrected request."""
    section = new_section(api, capacity=5)
    bad = api.as_(LIAM).post("/users/10/enrollments", json={"section_id": "x"}, headers=keyed())
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    assert records(api) == []
    assert enroll(api, LIAM, section).status_code == 201


def test_a_204_is_replayed_as_a_204(api):
    section = new_section(api, capacity=5)
    first = api.as_(REGISTRAR).delete(f"/sections/{section}", headers=keyed())
    again = api.as_(REGISTRAR).delete(f"/sections/{section}", headers=keyed())
    assert first.status_code == again.status_code == 204
    assert first.content == again.content == b""
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    unkeyed = api.as_(REGISTRAR).delete(f"/sections/{section}")
    assert unkeyed.status_code == 404  # without the key: a second delete, as before


def test_a_keyed_answer_is_the_unkeyed_answer(api):
    """With a key, a write answers what it would have without one, byte for byte (as FastAPI
    serialises it through the route's response model), and so does every replay."""
    body = {"course_id": 5, "instructor_id": 3, "capacity": 5, "waitlist_capacity": 15}
    plain = api.as_(REGISTRAR).post("/sections", json={**body, "section_number": 60})
    with_key = api.as_(REGISTRAR).post(
        "/sections", json={**body, "section_number": 61}, headers=keyed("section")
    )
    assert plain.status_code == with_key.status_code == 201
    plain_id, keyed_id = plain.json()["id"], with_key.json()["id"]
    expected = plain.content.replace(b'"id":%d,' % plain_id, b'"id":%d,' % keyed_id)
    assert with_key.content == expected.replace(b'"section_number":60', b'"section_number":61')


def test_the_csv_import_is_keyed_too(api):
    csv = "user_id,course_code,term,grade\n10,CPSC 131,2025-FA,A\n"
    headers = {**keyed("import"), "Content-Type": "text/csv"}
    first = api.as_(REGISTRAR).post("/completed-courses", content=csv, headers=headers)
    again = api.as_(REGISTRAR).post("/completed-courses", content=csv, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.json() == {"imported": 1}
    other = api.as_(REGISTRAR).post("/completed-courses", content=csv + "9,CPSC 131,,B\n",
                                    headers=headers)  # fmt: skip
    assert other.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "1 to 255"),
        ("x" * 256, "1 to 255"),
        ("tab\there", "printable ASCII"),
        ("clé", "printable ASCII"),
    ],
)
def test_a_malformed_key_is_422_naming_the_header(api, value, why):
    section = new_section(api, capacity=5)
    before = api.dump()
    refused = api.as_(LIAM).post(
        "/users/10/enrollments",
        json={"section_id": section},
        headers={idempotency.HEADER: value.encode()},
    )
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "validation_error"
    (error,) = body["errors"]
    assert (error["field"], error["in"]) == (idempotency.HEADER, "header")
    assert why in error["message"]
    assert api.dump() == before


def test_two_key_headers_are_422(api):
    section = new_section(api, capacity=5)
    refused = api.client.post(
        "/users/10/enrollments",
        json={"section_id": section},
        headers=[*api.headers(LIAM).items(), (idempotency.HEADER, "a"), (idempotency.HEADER, "b")],
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "Idempotency-Key"


def test_a_quoted_key_is_the_same_key(api):
    """The draft sends the key as a Structured Field string ("..."), Stripe bare: the same key."""
    section = new_section(api, capacity=5)
    first = enroll(api, LIAM, section, key='"abc"')
    again = enroll(api, LIAM, section, key="abc")
    assert again.headers[idempotency.REPLAYED_HEADER] == "true" and again.content == first.content


def test_a_stranger_with_a_bad_key_is_refused_for_who_they_are_first(api):
    bad_key = {idempotency.HEADER: ""}
    no_gateway = api.client.post("/users/10/enrollments", json={"section_id": 1}, headers=bad_key)
    assert (no_gateway.status_code, no_gateway.json()["code"]) == (401, "no_gateway")
    wrong_role = api.as_((3, "kavery", "instructor")).post(
        "/users/3/enrollments", json={"section_id": 1}, headers=bad_key
    )
    assert (wrong_role.status_code, wrong_role.json()["code"]) == (403, "forbidden")


def test_a_key_expires_after_the_ttl(api, monkeypatch):
    """24 hours later (a clock of the test's own) the key is new again: the same request is made
    anew, and the expired record is replaced."""
    section = new_section(api, capacity=5)
    clock = [1_000_000.0]
    monkeypatch.setattr(idempotency, "now", lambda: clock[0])
    first = enroll(api, LIAM, section)
    assert api.as_(LIAM).delete(f"/users/10/enrollments/{section}").status_code == 200
    clock[0] += 24 * 3600 - 1
    assert enroll(api, LIAM, section).headers.get(idempotency.REPLAYED_HEADER) == "true"
    clock[0] += 2
    later = enroll(api, LIAM, section)
    assert later.status_code == 201 and idempotency.REPLAYED_HEADER.lower() not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert rows_of(api, LIAM[0], section) == [("dropped",), ("enrolled",)]
    (stored,) = records(api)
    assert stored["created_at"] == clock[0]


def test_keyed_writes_purge_expired_records_a_bounded_number_at_most_once_a_second(
    api, monkeypatch
):
    clock = [1_000_000.0]
    monkeypatch.setattr(idempotency, "now", lambda: clock[0])
    monkeypatch.setattr(idempotency, "PURGE_LIMIT", 3)
    monkeypatch.setattr(idempotency, "_next_purge", 0.0)  # the last sweep: on this clock
    section = new_section(api, capacity=30)
    for i in range(5):
        assert api.as_(REGISTRAR).patch(
            f"/sections/{section}", json={"capacity": 10 + i}, headers=keyed(f"old-{i}")
        ).status_code == 200  # fmt: skip
    clock[0] += 24 * 3600 + 1
    enroll(api, LIAM, section)
    assert [r["key"] for r in records(api)] == ["old-3", "old-4", KEY]
    clock[0] += 0.5  # within the second: no sweep
    enroll(api, AVA, section)
    assert [r["key"] for r in records(api)] == ["old-3", "old-4", KEY, KEY]
    clock[0] += 0.5
    enroll(api, (11, "nwilliams", "student"), section)
    assert [r["key"] for r in records(api)] == [KEY, KEY, KEY]


def test_the_openapi_schema_declares_the_key_on_every_write_and_only_there(api):
    schema = api.client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            write = method in ("post", "put", "patch", "delete")
            assert (idempotency.HEADER in names) == write, (method, path)
            if write:
                assert "idempotency_key_reused" in operation["responses"]["422"]["x-codes"]


# three processes, one database: a retry racing the first


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    var: Path = tmp_path_factory.mktemp("keyed-race")
    cluster = EnrollmentCluster(var, make_secret_file(var))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_the_same_key_sent_at_once_to_three_instances_makes_one_change(instances):
    """30 copies of one keyed enroll, leaving together, ten to each of three real uvicorn
    processes on one database file: one enrollment, one answer made and 29 replays of it."""
    from harness import http

    registrar = identity_headers(instances.secret, 1, "rhenderson", "registrar")
    body = {"course_id": 4, "section_number": 77, "instructor_id": 3, "capacity": 3}
    section = http.post(f"{instances.urls[0]}/sections", json=body, headers=registrar).json()["id"]
    student = {**identity_headers(instances.secret, 10, "lsmith", "student"), **keyed("race")}
    requests = [
        ("POST", f"{instances.urls[i % 3]}/users/10/enrollments", student, {"section_id": section})
        for i in range(30)
    ]
    replies = asyncio.run(burst(requests))
    assert Counter(r.status for r in replies) == {201: 30}
    assert len({r.body for r in replies}) == 1
    replayed = Counter(r.headers.get(idempotency.REPLAYED_HEADER.lower()) for r in replies)
    assert replayed == {"true": 29, None: 1}
    with sqlite3.connect(instances.db) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM enrollments WHERE user_id = 10 AND section_id = ?", (section,)
        ).fetchone()[0]
    assert rows == 1


def test_every_write_route_answers_what_its_write_returns():
    """Under a key the answer is made from what the route's write returns, inside its transaction
    (`KeyedWrite`, `idempotency.answer_maker`), and the endpoint's own code after the write does
    not run: so each write endpoint must answer exactly that, `return await db.write(...)`, or,
    on a 204 route, nothing (`await db.write(...)` then `return Response(status_code=204)`). A
    new write route that reshaped the write's result would replay another answer than its
    first."""
    import ast
    import inspect
    import textwrap

    from app.enrollment.deps import KeyedWrite
    from app.enrollment.routes import router

    checked = 0
    for route in router.routes:
        if not isinstance(route, KeyedWrite):
            continue
        endpoint = inspect.unwrap(route.endpoint)
        body = ast.parse(textwrap.dedent(inspect.getsource(endpoint))).body[0].body
        statements = [s for s in body if not isinstance(s, ast.Expr | ast.Return)
                      or not isinstance(getattr(s, "value", None), ast.Constant)]  # fmt: skip
        writes = [
            n
            for s in statements
            for n in ast.walk(s)
            if isinstance(n, ast.Await) and ast.unparse(n.value).startswith("db.write(")
        ]
        assert len(writes) == 1, (route.path, "one write of its own, awaited")
        if route.status_code == 204:
            assert isinstance(statements[-2], ast.Expr) and statements[-2].value is writes[0]
            assert ast.unparse(statements[-1]) == "return Response(status_code=204)", route.path
        else:
            assert isinstance(statements[-1], ast.Return) and statements[-1].value is writes[0]
        checked += 1
    assert checked >= 20


def test_a_keyed_write_that_first_records_an_account_keys_its_own_write(tmp_path, monkeypatch):
    """Naming an instructor this service has not seen makes it ask the auth service and record
    the account first (`directory.make_current`, a write aside): the key is for the section's
    creation, which is what is recorded and replayed."""
    from fastapi.testclient import TestClient

    from app.enrollment.init_db import init_db
    from app.enrollment.main import create_app
    from app.enrollment.people import directory
    from app.enrollment.settings import Settings

    db_path = tmp_path / "enroll.db"
    init_db(db_path)
    secret_file = make_secret_file(tmp_path)
    settings = Settings(
        database=db_path, gateway_secret_file=secret_file, auth_urls="http://127.0.0.1:9"
    )
    account = {"id": 500, "username": "newprof", "first_name": "New", "last_name": "Prof",
               "roles": ["instructor"]}  # fmt: skip

    async def from_auth(_settings, user_id):
        return account if user_id == 500 else None

    monkeypatch.setattr(directory, "fetch_account", from_auth)
    body = {"course_id": 5, "section_number": 60, "instructor_id": 500, "capacity": 5}
    headers = {**identity_headers(secret_file.read_text(), *REGISTRAR), **keyed("prof")}
    with TestClient(create_app(settings)) as client:
        first = client.post("/sections", json=body, headers=headers)
        again = client.post("/sections", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json()["instructor_id"] == 500 and again.content == first.content
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM sections WHERE section_number = 60").fetchone()[
            0
        ] == 1  # fmt: skip
        assert conn.execute("SELECT username FROM users WHERE id = 500").fetchone() == ("newprof",)
