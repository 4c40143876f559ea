"""Schemathesis against both services' OpenAPI schemas, in process (ASGI), with real identities.

Enrollment: every operation; each generated case is sent as the registrar, an instructor and a
student (the headers the gateway sets from each one's real access token, signed by the auth
service), without any identity (401), and as an impostor whose username belongs to another id
(409). Auth: register, login, refresh, the JWKS and the registrar's accounts, with the service's
own tokens and a real login mixed into the generated input.

Every response must pass: not_a_server_error (no 5xx), response_schema_conformance (the body is
what the schema declares for that status) and status_code_conformance (the status is declared).
`test_every_declared_status_is_reached_or_explained` then checks the other direction. Also:
content_type_conformance, response_headers_conformance, and negative_data_rejection (input the
schema forbids is refused with a 4xx).

What it found, now fixed: every 4xx but 422 was undeclared; the declared 422 was FastAPI's
HTTPValidationError, not the body we send (app/common/errors.py ErrorOut); and bodies json.loads
refuses other than for syntax (not UTF-8, nested past the recursion limit, 5,000-digit numbers)
were a bare 400, now a 422 naming the body like any other invalid body.

Bounded and repeatable: schemathesis's coverage phase (boundaries, wrong types, missing fields)
plus 25 fuzzed examples per operation, positive and negative; a fixed seed, derandomized
Hypothesis and no example database. Both databases are fresh temporary files, put back to the
seed before each operation. Hypothesis also draws on constants of the code loaded, so the cases
depend on which tests are collected, but not on chance.

Last run (2 cores, whole suite): enrollment 1,160 cases sent as 5,800 requests over 21
operations, auth 233 cases over 4 operations, 22 s for this module. Each run prints its own
counts at the end ("fuzz: ...").
"""

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.auth.helpers import DEMO_PASSWORD
from tests.fuzz.helpers import (
    FUZZ_SETTINGS,
    TALLY,
    InProcessSession,
    auth_app,
    enrollment_app,
    fuzz_config,
    gateway_headers,
    restore,
    sign_in,
    snapshot,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,  # input the schema forbids is refused (4xx), never acted on
]
# Refusing input the schema forbids: any 4xx. 413 too: a string over its maxLength in 4-byte
# characters can be a body over the 64 KiB limit. `seeded_databases` runs once per operation, on
# purpose: the examples of one operation share their side effects.
CONFIG = fuzz_config(25, {"negative_data_rejection": {"expected-statuses": ["4XX"]}})

# Both services on fresh files; schemathesis needs the apps when this module is collected.
WORK = Path(tempfile.mkdtemp(prefix="fuzz-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
ENROLLMENT_APP, ENROLLMENT_DB, SECRET = enrollment_app(WORK / "enroll")
AUTH_APP, AUTH_DB = auth_app(WORK / "auth")
ENROLLMENT_SEED, AUTH_SEED = WORK / "enroll-seed.db", WORK / "auth-seed.db"
snapshot(ENROLLMENT_DB, ENROLLMENT_SEED)
snapshot(AUTH_DB, AUTH_SEED)

with TestClient(AUTH_APP) as _client:
    TOKENS = {name: sign_in(_client, name) for name in ("rhenderson", "kavery", "ajohnson")}
CALLERS = {
    "registrar": gateway_headers(SECRET, TOKENS["rhenderson"]["claims"]),
    "instructor": gateway_headers(SECRET, TOKENS["kavery"]["claims"]),
    "student": gateway_headers(SECRET, TOKENS["ajohnson"]["claims"]),
    "anonymous": {},
    # The gateway vouches for it, but user 999's username is ajohnson's (user 9) here: 409.
    # A role every route allows, so the identity check, not the role check, answers: 409.
    "impostor": {
        **gateway_headers(SECRET, TOKENS["ajohnson"]["claims"]),
        "X-User-Id": "999",
        "X-User-Roles": "registrar",
    },
}

ENROLLMENT = schemathesis.openapi.from_asgi("/openapi.json", ENROLLMENT_APP, config=CONFIG)
AUTH = schemathesis.openapi.from_asgi("/openapi.json", AUTH_APP, config=CONFIG)

# (service, "METHOD /path") -> statuses seen, for the reachability check at the end
SEEN: dict[tuple[str, str], set[int]] = {}


def record(service: str, label: str, status: int) -> None:
    if (service, label) not in SEEN:
        TALLY[f"fuzz {service} operations"] += 1
    SEEN.setdefault((service, label), set()).add(status)
    TALLY[f"fuzz {service} requests"] += 1


@pytest.fixture
def seeded_databases() -> None:
    """Each operation starts from the seed: what an earlier operation deleted is back."""
    restore(ENROLLMENT_SEED, ENROLLMENT_DB)
    restore(AUTH_SEED, AUTH_DB)


def with_(path_parameters=None, body=None, token=None):
    """A change to a generated case: real ids, a real body or a real token in place of what
    was generated (the rest of the case stays generated)."""

    def change(case):
        if path_parameters is not None:
            case.path_parameters = {**case.path_parameters, **path_parameters}
        if body is not None:
            case.body = body
        if token is not None:
            case.headers = {**(case.headers or {}), "authorization": f"Bearer {token}"}
        return case

    return change


def mixed_in(strategy, changes):
    return st.one_of(strategy, *(strategy.map(change) for change in changes))


# enrollment

# Valid ids, pointed at rows of the seed (and one past them), so the rules behind the 404 run.
SEED_IDS = {
    "course_id": range(1, 10),  # courses 1-8
    "department_id": range(1, 5),  # departments 1-3
    "section_id": range(1, 12),  # sections 1-10; 1 and 3 are full, with waitlists
    "user_id": (1, 3, 9, 10, 13, 14, 999),  # registrar, instructor, students, waitlisted
    "instructor_id": (3, 4, 9, 999),  # two instructors, a student, nobody
    "term_id": (1, 2, 99),  # this fall, next spring, none
    "window_id": (1, 2, 99),
}


def _seeded(values: object) -> object:
    if not isinstance(values, dict):
        return values
    return {
        name: SEED_IDS[name][value % len(SEED_IDS[name])]
        if name in SEED_IDS and type(value) is int and 0 < value < 2**63
        else value
        for name, value in values.items()
    }


def with_seeded_ids(case):
    case.path_parameters = _seeded(case.path_parameters)
    case.query = _seeded(case.query)
    case.body = _seeded(case.body)
    return case


# Inputs that reach a success or a rule that random ids seldom do.
ENROLLMENT_INPUT = {
    "POST /courses": [with_(body={"department_id": 1, "code": "FUZ 101", "title": "Fuzzing"})],
    "POST /sections": [with_(body={"course_id": 1, "section_number": 9, "capacity": 2})],
    "PATCH /sections/{section_id}": [
        with_(path_parameters={"section_id": 3}, body={"capacity": 5}),  # promotes the waitlist
        with_(path_parameters={"section_id": 1}, body={"capacity": 1}),  # below enrollment: 409
        with_(path_parameters={"section_id": 999}, body={"freeze": True}),
    ],
    "DELETE /sections/{section_id}/enrollments/{user_id}": [
        with_(path_parameters={"section_id": 1, "user_id": 9})
    ],
    "DELETE /users/{user_id}/enrollments/{section_id}": [
        with_(path_parameters={"user_id": 9, "section_id": 1})
    ],
    "DELETE /users/{user_id}/waitlist/{section_id}": [
        with_(path_parameters={"user_id": 13, "section_id": 1})
    ],
    "PUT /courses/{course_id}/prerequisites": [
        with_(path_parameters={"course_id": 4}, body={"course_ids": [1]}),
        with_(path_parameters={"course_id": 1}, body={"course_ids": [1]}),  # itself: 409
        with_(path_parameters={"course_id": 4}, body={"course_ids": [999]}),  # 404
    ],
    "PUT /users/{user_id}/credit-limit": [
        with_(path_parameters={"user_id": 9}, body={"credit_limit": 21}),
        with_(path_parameters={"user_id": 999}, body={"credit_limit": 21}),
    ],
    "POST /users/{user_id}/holds": [
        with_(path_parameters={"user_id": 9}, body={"reason": "fees"}),
        with_(path_parameters={"user_id": 999}, body={"reason": "fees"}),
    ],
    "DELETE /users/{user_id}/holds/{hold_id}": [
        with_(path_parameters={"user_id": 38, "hold_id": 1}),  # the seed's hold
        with_(path_parameters={"user_id": 38, "hold_id": 999}),
    ],
    "POST /sections/{section_id}/permits": [
        with_(path_parameters={"section_id": 1}, body={"user_id": 20, "waives": ["capacity"]}),
        with_(path_parameters={"section_id": 1}, body={"user_id": 999, "waives": ["capacity"]}),
    ],
    "POST /terms": [with_(body={"code": "2027-SU"}), with_(body={"code": "2027-SP"})],  # 409
    "PATCH /terms/{term_id}": [
        with_(path_parameters={"term_id": 2}, body={"name": "Spring"}),
        with_(path_parameters={"term_id": 99}, body={"name": "Spring"}),
    ],
    "POST /terms/{term_id}/windows": [
        with_(
            path_parameters={"term_id": 2},
            body={"opens_at": "2027-01-02T16:00:00Z", "closes_at": "2027-01-03T16:00:00Z"},
        ),
        with_(
            path_parameters={"term_id": 99},
            body={"opens_at": "2027-01-02T16:00:00Z", "closes_at": "2027-01-03T16:00:00Z"},
        ),
    ],
    "DELETE /terms/{term_id}/windows/{window_id}": [
        with_(path_parameters={"term_id": 2, "window_id": 1}),
        with_(path_parameters={"term_id": 2, "window_id": 99}),
    ],
    "PUT /users/{user_id}/class-level": [
        with_(path_parameters={"user_id": 9}, body={"class_level": "junior"}),
        with_(path_parameters={"user_id": 999}, body={"class_level": "junior"}),
    ],
    "POST /users/{user_id}/enrollments": [
        with_(path_parameters={"user_id": 9}, body={"section_id": 4}),
        with_(path_parameters={"user_id": 9}, body={"section_id": 1}),  # already enrolled: 409
    ],
}


@ENROLLMENT.hook("before_generate_case")
def _enrollment_cases(context, strategy):
    changes = [with_seeded_ids, *ENROLLMENT_INPUT.get(context.operation.label, [])]
    return mixed_in(strategy, changes)


@ENROLLMENT.parametrize()
@FUZZ_SETTINGS
def test_enrollment(case, seeded_databases, in_process):
    TALLY["fuzz enrollment cases"] += 1
    for headers in CALLERS.values():
        response = case.call(headers=headers, session=in_process["enrollment"])
        record("enrollment", case.operation.label, response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)


# auth


def _auth_input(label: str) -> list:
    ava, registrar = TOKENS["ajohnson"], TOKENS["rhenderson"]
    login = {"username": "ajohnson", "password": DEMO_PASSWORD}
    instructor = {
        "username": "fuzz.instructor",
        "password": "a-long-enough-password",
        "first_name": "Fuzz",
        "last_name": "Instructor",
        "roles": ["instructor"],
    }
    return {
        "POST /login": [with_(body=login), with_(body={**login, "password": "not-the-password"})],
        # A refresh token renews; an access token in its place must not.
        "POST /refresh": [
            with_(body={"refresh_token": ava["refresh_token"]}),
            with_(body={"refresh_token": ava["access_token"]}),
        ],
        # Only a registrar may create an instructor; a seed username is taken.
        "POST /register": [
            with_(token=registrar["access_token"]),
            with_(body=instructor, token=registrar["access_token"]),
            with_(body=instructor, token=ava["access_token"]),
            with_(body=instructor, token="not-a-token"),
            with_(body={**instructor, "username": "ajohnson", "roles": ["student"]}),
        ],
        # The registrar's accounts: a registrar's token on a seed account (9), an unknown one, or
        # their own (1: 409 for a lock-out); a student's token (403).
        "GET /accounts": [with_(token=registrar["access_token"]), with_(token=ava["access_token"])],
        "GET /accounts/{user_id}": [
            with_(path_parameters={"user_id": 9}, token=registrar["access_token"]),
            with_(path_parameters={"user_id": 999999}, token=registrar["access_token"]),
            with_(token=ava["access_token"]),
        ],
        "PATCH /accounts/{user_id}": [
            with_(path_parameters={"user_id": 9}, token=registrar["access_token"]),
            with_(
                path_parameters={"user_id": 9},
                body={"disabled": True},
                token=registrar["access_token"],
            ),
            with_(
                path_parameters={"user_id": 1},
                body={"disabled": True},
                token=registrar["access_token"],
            ),
            with_(
                path_parameters={"user_id": 999999},
                body={"roles": ["student"]},
                token=registrar["access_token"],
            ),
            with_(token=ava["access_token"]),
        ],
        "PUT /accounts/{user_id}/password": [
            with_(path_parameters={"user_id": 9}, token=registrar["access_token"]),
            with_(
                path_parameters={"user_id": 9},
                body={"password": "a-brand-new-passphrase"},
                token=registrar["access_token"],
            ),
            with_(
                path_parameters={"user_id": 999999},
                body={"password": "a-brand-new-passphrase"},
                token=registrar["access_token"],
            ),
            with_(token=ava["access_token"]),
        ],
    }.get(label, [])


@AUTH.hook("before_generate_case")
def _auth_cases(context, strategy):
    return mixed_in(strategy, _auth_input(context.operation.label))


@pytest.fixture(scope="module")
def in_process() -> Iterator[dict[str, InProcessSession]]:
    """One in-process client per service for the module's calls."""
    with InProcessSession(ENROLLMENT_APP) as enroll, InProcessSession(AUTH_APP) as auth:
        yield {"enrollment": enroll, "auth": auth}


@AUTH.parametrize()
@FUZZ_SETTINGS
def test_auth(case, seeded_databases, in_process):
    TALLY["fuzz auth cases"] += 1
    sends = [{}]
    if case.operation.definition.raw.get("x-roles"):
        # The registrar's routes: also as the registrar, so that what the generated input is
        # (not only the token it carries) decides the answer.
        sends.append({"authorization": f"Bearer {TOKENS['rhenderson']['access_token']}"})
    for headers in sends:
        response = case.call(headers=headers, session=in_process["auth"])
        record("auth", case.operation.label, response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)


# every declared status: reached above, or explained here

ABUSE = "too big for a fuzzed body; test_abuse.py sends 1 MB and 10 MB to every route"
EXPLAINED = {
    ("auth", "POST /register", 503): "only on a read replica: tests/auth/test_read_only.py",
    **{
        ("auth", label, 503): "only on a replica whose primary is out of reach:"
        " tests/auth/test_account_management.py"
        for label in ("PATCH /accounts/{user_id}", "PUT /accounts/{user_id}/password")
    },
    **{
        ("auth", label, 413): ABUSE
        for label in ("PATCH /accounts/{user_id}", "PUT /accounts/{user_id}/password")
    },
    **{
        ("enrollment", f"{m} {p}", 413): ABUSE
        for m, p in [
            ("POST", "/courses"),
            ("POST", "/sections"),
            ("PATCH", "/sections/{section_id}"),
            ("POST", "/users/{user_id}/enrollments"),
            ("POST", "/sections/{section_id}/permits"),
            ("POST", "/users/{user_id}/holds"),
            ("PUT", "/courses/{course_id}/prerequisites"),
            ("PUT", "/users/{user_id}/credit-limit"),
            ("POST", "/terms"),
            ("PATCH", "/terms/{term_id}"),
            ("POST", "/terms/{term_id}/windows"),
            ("PUT", "/users/{user_id}/class-level"),
            ("PATCH", "/users/{user_id}/notifications"),
            ("PATCH", "/users/{user_id}/notifications/{notification_id}"),
            ("POST", "/users/{user_id}/swaps"),
            ("POST", "/users/{user_id}/offers/{offer_id}/accept"),
            ("POST", "/users/{user_id}/offers/{offer_id}/decline"),
        ]
    },
    ("enrollment", "POST /users/{user_id}/swaps", 200): "a fuzzed swap would need the seat it"
    " names held and room in the other section: tests/enrollment/test_swaps.py swaps",
    **{
        ("enrollment", f"POST /users/{{user_id}}/offers/{{offer_id}}/{verb}", 200): "the seed has"
        " no seat offer to answer: tests/enrollment/test_offers.py answers them"
        for verb in ("accept", "decline")
    },
    ("enrollment", "PATCH /users/{user_id}/notifications/{notification_id}", 200): "the seed has"
    " no notification to mark: tests/enrollment/test_notifications.py marks them",
    ("enrollment", "DELETE /sections/{section_id}/permits/{permit_id}", 200): "the seed has no"
    " permit to revoke: tests/enrollment/test_access.py and test_eligibility.py revoke one",
    ("enrollment", "POST /completed-courses", 413): "a CSV too big for a fuzzed body:"
    " test_abuse.py sends 1 MB and 10 MB",
    **{("auth", f"POST {p}", 413): ABUSE for p in ("/register", "/login", "/refresh", "/logout")},
    **{
        ("auth", f"POST {p}", 409): "request_in_progress: a retry with the same Idempotency-Key"
        " while the first is still being made: tests/auth/test_idempotency.py"
        for p in ("/refresh", "/logout")
    },
    **{
        ("auth", f"POST {p}", 503): "only on a replica whose primary is out of reach:"
        " tests/auth/test_primary_fallback.py"
        for p in ("/refresh", "/logout")
    },
    ("auth", "POST /logout", 204): "needs a genuine refresh token, never fuzzed:"
    " tests/auth/test_sessions.py",
    ("auth", "GET /audit", 403): "a student's or instructor's token, or a registrar's that its"
    " stored account no longer backs: tests/auth/test_staff_powers.py",
    **{
        ("auth", f"POST {p}", 429): "abuse limits, set out of reach here (tests/auth/helpers.py):"
        " tests/auth/test_throttle.py and tests/e2e/test_throttle.py"
        for p in ("/register", "/login")
    },
    ("auth", "POST /login", 403): "a disabled account's right password:"
    " tests/auth/test_account_management.py",
    ("auth", "POST /login", 503): "the abuse counts' database busy or refusing the write that"
    " counts the attempt: the same handler as tests/enrollment/test_db_errors.py's",
}


def declared_statuses(app) -> dict[str, set[int]]:
    return {
        f"{method.upper()} {path}": {int(status) for status in operation["responses"]}
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
    }


# Declared on every route, never reached by a fuzz run: 500 (a fault, which not_a_server_error
# fails the run for), and on every enrollment route the database's 503s (`identify` may record
# the caller, so any route can write).
EXPLAINED |= {
    **{
        (service, label, 500): "internal_error: not_a_server_error fails any run that meets one;"
        " tests/enrollment/test_db_errors.py makes one"
        for service, app in (("enrollment", ENROLLMENT_APP), ("auth", AUTH_APP))
        for label in declared_statuses(app)
    },
    **{
        ("enrollment", label, 503): "the database busy past its timeout, full or read-only:"
        " tests/enrollment/test_db_errors.py"
        for label in declared_statuses(ENROLLMENT_APP)
    },
}


def test_every_declared_status_is_reached_or_explained():
    declared = {
        (service, label): statuses
        for service, app in (("enrollment", ENROLLMENT_APP), ("auth", AUTH_APP))
        for label, statuses in declared_statuses(app).items()
    }
    if not declared.keys() <= SEEN.keys():
        pytest.skip("needs the fuzz run of every operation in this session")

    unexplained = {
        f"{service} {label}: {status}"
        for (service, label), statuses in declared.items()
        for status in statuses - SEEN[service, label]
        if (service, label, status) not in EXPLAINED
    }
    assert not unexplained, "declared, never answered, and not explained"
    stale = {key for key in EXPLAINED if key[2] not in declared.get(key[:2], set())}
    assert not stale, "explanations of statuses no longer declared"
