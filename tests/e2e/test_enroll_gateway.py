"""The enrollment API as a client sees it: through the real enroll gateway (KrakenD) in front of
three real enrollment instances, with real RS256 tokens signed by the auth service's key.

- the role matrix: every route of etc/enroll/settings/endpoints.json x {no token, student,
  instructor, registrar}. The gateway answers 401 and 403 itself; whatever it lets through gets
  exactly the status and body the service gives the same request in process (on the same seed);
- the object rules, which only the service can check (another student's records, a section the
  instructor does not teach);
- token attacks, each a 401 that never reaches a backend;
- identity and secret headers sent by a client never reach a backend as such;
- load balancing over the three instances;
- the 330-student race, through the gateway.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from app.auth.keys import generate_jwks
from app.auth.tokens import KeyRing
from app.common.identity import gateway_headers
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.routes import CATALOG_CACHE_SECONDS
from app.enrollment.settings import Settings
from harness import http
from harness.cluster import Cluster
from harness.db import copy_database
from harness.loadclient import burst
from tests.enrollment.helpers import assert_rush_outcome, served

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = json.loads((ROOT / "etc" / "enroll" / "settings" / "endpoints.json").read_text())
PREFIX = ENDPOINTS["prefix"]

# Seed people (share/seed/people.json): kavery teaches sections 1 and 2 (course 4); ajohnson
# is enrolled in sections 1 and 2; lsmith is another student.
CALLERS = {
    "no token": None,
    "student": (9, "ajohnson", "student"),
    "instructor": (3, "kavery", "instructor"),
    "registrar": (1, "rhenderson", "registrar"),
}
BODIES = {
    ("POST", "/courses"): {"department_id": 1, "code": "CPSC 490", "title": "Capstone"},
    ("POST", "/sections"): {"course_id": 2, "section_number": 9, "instructor_id": 6, "capacity": 9},
    ("PATCH", "/sections/{section_id}"): {"capacity": 31},
    ("POST", "/users/{user_id}/enrollments"): {"section_id": 4},
    ("POST", "/users/{user_id}/swaps"): {"drop_section_id": 1, "add_section_id": 4},
    ("PUT", "/courses/{course_id}/prerequisites"): {"course_ids": [1]},
    ("PUT", "/users/{user_id}/credit-limit"): {"credit_limit": 20},
    ("POST", "/users/{user_id}/holds"): {"reason": "fees"},
    ("POST", "/sections/{section_id}/permits"): {"user_id": 20, "waives": ["capacity"]},
    ("PATCH", "/users/{user_id}/notifications"): {"read_up_to": 1},
    ("PATCH", "/users/{user_id}/notifications/{notification_id}"): {"read": True},
}
# Timestamps (the two runs happen at different moments) and each request's own id.
VOLATILE = re.compile(r"(^|_)at$|^request_id$")


def path_for(route: dict, caller: tuple | None, **ids: int) -> str:
    """The route's path with ids the caller may use: their own user id, section 1 (kavery's,
    ajohnson's), course 4; `ids` overrides any of them."""
    values = {
        "user_id": caller[0] if caller else 9,
        "section_id": 1,
        "course_id": 4,
        "hold_id": 1,
        "permit_id": 1,
        "term_id": 2,
        "window_id": 1,
        "notification_id": 1,
        "offer_id": 1,
    } | ids
    return route["path"].format(**values)


def without_volatile(value):
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def lookup_timed_out(reply, direct) -> bool:
    """The two answers differ only in an email one of them lacks (null)."""
    if reply.status_code != 200 or direct.status_code != 200:
        return False
    ours, theirs = reply.json(), direct.json()
    if not isinstance(ours, dict) or not isinstance(theirs, dict) or ours == theirs:
        return False
    rest = {k: v for k, v in ours.items() if k != "email"}
    return rest == {k: v for k, v in theirs.items() if k != "email"} and None in (
        ours.get("email"),
        theirs.get("email"),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> Path:
    """A pristine seeded enrollment database, to put the cluster's back to between cases."""
    path = tmp_path_factory.mktemp("seed") / "enroll.db"
    init_db(path)
    return path


@pytest.fixture
def in_process(tmp_path, cluster: Cluster):
    """The enrollment service in process on a fresh seed: the answer the gateway must pass on."""
    database = tmp_path / "enroll.db"
    init_db(database)
    settings = Settings(
        database=database,
        gateway_secret_file=cluster.enrollment.secret_file,
        instance="direct",
        # the same auth service as the cluster's instances: GET /users/{id} brings its email
        auth_urls=tuple(cluster.enrollment.auth_urls),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def through_gateway(cluster: Cluster, method: str, path: str, token: str | None, body=None):
    headers = bearer(token) if token else {}
    return http.request(
        method, cluster.enroll_gateway.url + PREFIX + path, headers=headers, json=body, timeout=30
    )


MATRIX = (
    [
        (route, role)
        for route in ENDPOINTS["routes"]
        for role in CALLERS
        # object rules: another student's records; a section the instructor does not teach
    ]
    + [
        ({**route, "ids": {"user_id": 10}}, "student")
        for route in ENDPOINTS["routes"]
        if "{user_id}" in route["path"] and route["path"].startswith("/users/")
    ]
    + [
        ({**route, "ids": {"section_id": 3}}, "instructor")
        for route in ENDPOINTS["routes"]
        if route["path"].startswith("/sections/{section_id}/")
    ]
)


@pytest.mark.parametrize(
    ("route", "role"),
    MATRIX,
    ids=[f"{r['method']} {path_for(r, CALLERS[w], **r.get('ids', {}))} as {w}" for r, w in MATRIX],
)
def test_role_matrix(cluster: Cluster, seed: Path, in_process: TestClient, route, role):
    caller = CALLERS[role]
    path = path_for(route, caller, **route.get("ids", {}))
    body = BODIES.get((route["method"], route["path"]))
    copy_database(seed, cluster.enrollment.db)  # every case starts from the seed

    token = cluster.token(*caller) if caller else None
    reply = through_gateway(cluster, route["method"], path, token, body)

    if caller is None:
        assert reply.status_code == 401
        assert "x-request-id" not in reply.headers  # refused at the gateway
    elif role not in route["roles"]:
        assert reply.status_code == 403
        assert "x-request-id" not in reply.headers
    else:
        headers = gateway_headers(cluster.secret, *caller)
        direct = in_process.request(route["method"], path, headers=headers, json=body)
        assert "x-request-id" in reply.headers  # reached a backend, which echoes its request id
        assert reply.status_code == direct.status_code, reply.text
        for _ in range(3):
            if not (route["method"] == "GET" and lookup_timed_out(reply, direct)):
                break
            # GET /users/{id}'s email comes from the auth service within 0.5 s, else null
            # (app/enrollment/people/directory.py): on a busy machine one side may miss it.
            reply = through_gateway(cluster, route["method"], path, token, body)
            direct = in_process.request(route["method"], path, headers=headers, json=body)
        if direct.content:
            assert without_volatile(reply.json()) == without_volatile(direct.json())
        else:
            assert reply.content == b""
        if "ids" in route:  # an object rule: the service refuses
            assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")


def test_the_matrix_covers_every_route_and_both_object_rules():
    routes = {(r["method"], r["path"]) for r in ENDPOINTS["routes"]}
    assert {(r["method"], r["path"]) for r, _ in MATRIX} == routes
    assert len(MATRIX) > 4 * len(routes)


# token attacks


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(cluster: Cluster) -> dict:
    token = cluster.token(9, "ajohnson", "student")
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def _hs256_with_public_key(cluster: Cluster) -> str:
    """Algorithm confusion: an HMAC keyed with the public key anyone can fetch."""
    jwks = json.loads((cluster.var / "gateway" / "jwks.json").read_text())
    public = jwks["keys"][0]
    pem = RSAAlgorithm.from_jwk(json.dumps(public)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": public["kid"], "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(_claims(cluster)).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _unsigned(cluster: Cluster) -> str:
    header = _b64(json.dumps({"alg": "none", "kid": cluster.keys.signing_kid}).encode())
    return f"{header}.{_b64(json.dumps(_claims(cluster)).encode())}."


def _bad_signature(cluster: Cluster) -> str:
    head, claims, signature = cluster.token(9, "ajohnson", "student").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[len(raw) // 2] ^= 0xFF
    return f"{head}.{claims}.{_b64(bytes(raw))}"


def _other_claims(cluster: Cluster) -> str:
    """A genuine signature over claims someone changed afterwards (student -> registrar)."""
    head, _, signature = cluster.token(9, "ajohnson", "student").split(".")
    changed = _claims(cluster) | {"roles": ["registrar"]}
    return f"{head}.{_b64(json.dumps(changed).encode())}.{signature}"


ATTACKS = {
    "expired": lambda c: c.token(9, "ajohnson", "student", exp=int(time.time()) - 60),
    "wrong aud": lambda c: c.token(9, "ajohnson", "student", aud="someone-else"),
    "wrong iss": lambda c: c.token(9, "ajohnson", "student", iss="someone-else"),
    "bad signature": _bad_signature,
    "claims changed after signing": _other_claims,
    "alg none": _unsigned,
    "HS256 signed with the public key": _hs256_with_public_key,
    "kid naming no served key": lambda c: KeyRing(generate_jwks(["other-key"])).sign(_claims(c)),
    "foreign key pair with our kid": lambda c: KeyRing(generate_jwks([c.keys.signing_kid])).sign(
        _claims(c)
    ),
    "refresh token as access token": lambda c: c.token(9, "ajohnson", "student", use="refresh"),
    "not a token": lambda c: "not-a-token",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_token_attacks_are_refused_at_the_gateway(cluster: Cluster, attack):
    token = ATTACKS[attack](cluster)

    reply = through_gateway(cluster, "GET", "/users/9/enrollments", token)

    assert reply.status_code == 401
    assert "x-request-id" not in reply.headers


def test_the_genuine_token_of_the_attacks_is_accepted(cluster: Cluster):
    """So each attack above is refused for its flaw, not for something they all share."""
    reply = through_gateway(
        cluster, "GET", "/users/9/enrollments", cluster.token(9, "ajohnson", "student")
    )
    assert reply.status_code == 200


# identity and secret headers from a client


def test_client_identity_and_secret_headers_never_reach_a_backend(cluster: Cluster):
    student = cluster.token(9, "ajohnson", "student")
    forged = {
        "X-User-Id": "1",
        "X-User-Name": "rhenderson",
        "X-User-Roles": "registrar",
        "X-Gateway-Secret": "a-guess-at-the-secret-0123456789abcdef",
    }
    url = cluster.enroll_gateway.url + PREFIX

    mine = http.get(url + "/users/9", headers={**bearer(student), **forged})
    registrars = http.get(url + "/users/1", headers={**bearer(student), **forged})
    listing = http.get(url + "/users", headers={**bearer(student), **forged})
    no_token = http.get(url + "/users/1", headers={**forged, "X-Gateway-Secret": cluster.secret})

    # The backend saw user 9, a student, with the gateway's own secret (the guess would be 401).
    assert (mine.status_code, mine.json()["username"]) == (200, "ajohnson")
    assert (registrars.status_code, registrars.json()["code"]) == (403, "forbidden")
    assert listing.status_code == 403 and "x-request-id" not in listing.headers
    assert no_token.status_code == 401 and "x-request-id" not in no_token.headers


def test_every_instance_serves_requests(cluster: Cluster):
    """Answers do not name the instance; each instance's own /metrics counts what it served."""
    token = cluster.token(9, "ajohnson", "student")
    route, urls = "/sections/{section_id}", cluster.enrollment.urls
    before = served(urls, "GET", route)
    with httpx.Client(
        base_url=cluster.enroll_gateway.url + PREFIX, headers=bearer(token)
    ) as client:
        # One section's page: always live (the section list may come from the gateway's cache).
        statuses = Counter(client.get("/sections/1").status_code for _ in range(60))
    after = served(urls, "GET", route)

    assert statuses == {200: 60}
    assert sum(after) - sum(before) == 60
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


# the catalog cache


def test_section_list_may_lag_by_the_cache_window_while_a_section_page_is_live(
    cluster: Cluster, seed: Path
):
    """The gateway answers the section list from its cache for CATALOG_CACHE_SECONDS: a section
    created in that window is on its own page at once, and in the list once the window is over.
    The token is checked on every request all the same."""
    copy_database(seed, cluster.enrollment.db)
    url = cluster.enroll_gateway.url + PREFIX
    student = bearer(cluster.token(9, "ajohnson", "student"))
    registrar = bearer(cluster.token(1, "rhenderson", "registrar"))
    listed = lambda: {s["id"] for s in http.get(url + "/sections", headers=student).json()}  # noqa: E731

    for number in range(80, 83):  # a slow moment can outlast the window: try again
        time.sleep(CATALOG_CACHE_SECONDS + 1)  # nothing cached from earlier tests
        started = time.monotonic()
        before = [listed() for _ in range(3)]  # one cached answer per instance
        body = {"course_id": 4, "section_number": number, "instructor_id": 3, "capacity": 5}
        new = http.post(url + "/sections", json=body, headers=registrar).json()["id"]
        page = http.get(url + f"/sections/{new}", headers=student)
        after = [listed() for _ in range(3)]
        # The cache ages an answer from its Date header, which uvicorn refreshes once a second:
        # an entry can count as up to a second older than it is, and on a loaded machine expire
        # early. So a try counts if it was well inside the window and a cached answer showed.
        if time.monotonic() - started < 0.9 and any(new not in ids for ids in after):
            break
    else:
        pytest.fail("three tries: each took longer than the cache window, or nothing was cached")

    assert page.status_code == 200 and page.json()["capacity"] == 5
    assert all(new not in ids for ids in before)
    assert any(new not in ids for ids in after)  # a cached list, still without it
    refused = http.get(url + "/sections", headers=bearer(_bad_signature(cluster)))
    assert refused.status_code == 401 and "x-request-id" not in refused.headers
    assert http.get(url + "/sections").status_code == 401

    time.sleep(CATALOG_CACHE_SECONDS + 1)
    assert all(new in listed() for _ in range(3))


# the race


STUDENTS, CAPACITY, WAITLIST = 330, 30, 15


def test_rush_of_330_students_through_the_gateway(cluster: Cluster, seed: Path):
    copy_database(seed, cluster.enrollment.db)
    registrar = cluster.token(1, "rhenderson", "registrar")
    url = cluster.enroll_gateway.url + PREFIX
    created = http.post(
        url + "/sections",
        headers=bearer(registrar),
        json={
            "course_id": 4,
            "section_number": 71,
            "instructor_id": 3,
            "capacity": CAPACITY,
            "waitlist_capacity": WAITLIST,
        },  # fmt: skip
    )
    assert created.status_code == 201, created.text
    section = created.json()["id"]
    students = range(5000, 5000 + STUDENTS)
    requests = [
        (
            "POST",
            f"{url}/users/{s}/enrollments",
            bearer(cluster.token(s, f"racer{s}", "student")),
            {"section_id": section},
        )
        for s in students
    ]

    before = served(cluster.enrollment.urls, "POST", "/users/{user_id}/enrollments")
    replies = asyncio.run(burst(requests))

    waitlist = http.get(url + f"/sections/{section}/waitlist", headers=bearer(registrar)).json()
    assert_rush_outcome(replies, waitlist, seats=CAPACITY, places=WAITLIST)
    after = served(cluster.enrollment.urls, "POST", "/users/{user_id}/enrollments")
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)  # all three
