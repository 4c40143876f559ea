"""Schemathesis through both real gateways: the services' own OpenAPI schemas, every operation, sent
to KrakenD (http://127.0.0.1:<port>/enroll_api and /auth_api) in front of the real processes.

Enrollment cases go out four times: as the registrar, an instructor and a student (real RS256
tokens) and without a token. What a backend answered (it echoes its X-Request-Id) must pass
every check: no 5xx, a declared status, a body in the declared schema. What the gateway answered
itself must be its own refusal: 401 without a valid token, 403 for a role the route does not
allow, 404 or 405 for a path or method no route has (JSON bodies of the gatewayerrors plugin;
a backend's answer is told apart by its X-Request-Id header), never a 5xx.
Auth cases go to the auth gateway: on the public routes every answer is a backend's and must pass
every check; the registrar's account routes are sent as the enrollment cases are, and a
backend's answer must pass every check, the gateway's own be its refusal.

Bounded and repeatable: the coverage phase plus 10 examples per operation, a fixed seed, no
example database; the enrollment database is put back to the seed before each operation.
"""

import atexit
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import ManagedCookiesSession

from harness.cluster import Cluster
from harness.db import copy_database
from tests.fuzz.helpers import FUZZ_SETTINGS, TALLY, auth_app, enrollment_app, fuzz_config

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CONFIG = fuzz_config(10)

# The services' schemas, from the apps themselves (built on throwaway files).
_WORK = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_ENROLLMENT_APP, _, _ = enrollment_app(_WORK / "enroll")
_AUTH_APP, _ = auth_app(_WORK / "auth")
ENROLLMENT = schemathesis.openapi.from_dict(_ENROLLMENT_APP.openapi(), config=CONFIG)
AUTH = schemathesis.openapi.from_dict(_AUTH_APP.openapi(), config=CONFIG)

CALLERS = {
    "registrar": (1, "rhenderson", "registrar"),
    "instructor": (3, "kavery", "instructor"),
    "student": (9, "ajohnson", "student"),
    "anonymous": None,
}
# The gateway's own answers: no valid token, a role the route does not allow, a path no route
# matches, a method no route has at that path (schemathesis tries TRACE and the like), a body
# over the route's limit (etc/krakend/templates/limits.tmpl).
GATEWAY_REFUSALS = {401, 403, 404, 405, 413}
# Found by this test: a control character in a path parameter (%00-%1F, %7F) was KrakenD's bare
# 500, since lura cannot build the backend URL from it. The gateways' path guard (the plugin
# etc/krakend/plugins/pathguard) now answers it with its own 400 `bad_path`; no path parameter
# of the API can hold one.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A path parameter that decodes to `%`, `#` or `?` is KrakenD's own 400, before any backend
# (`error: invalid URL escape "%"`, `error: encoded url params`): a clear 4xx; no id holds one.
URL_SPECIAL = re.compile(r"[%#?]")


@pytest.fixture(scope="module")
def seed(tmp_path_factory, cluster: Cluster) -> Path:
    path = tmp_path_factory.mktemp("seed") / "enroll.db"
    copy_database(cluster.enrollment.db, path)
    return path


@pytest.fixture
def seeded(cluster: Cluster, seed: Path) -> None:
    copy_database(seed, cluster.enrollment.db)


@pytest.fixture(scope="module")
def session() -> Iterator[ManagedCookiesSession]:
    """One keep-alive session for the module's requests, as schemathesis's own runner keeps
    (its make_session): a response's cookies dropped after each call, as on a new session, and
    no proxy from the environment for the loopback gateways. A new session per request cost a
    connection and the environment's proxy look-ups each, a fifth of this module's time."""
    with ManagedCookiesSession() as shared:
        shared.headers, shared.trust_env = {}, False
        yield shared


@pytest.fixture(scope="module")
def bearer(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Each caller's Authorization header: one token each for the module (an access token
    lives 20 minutes; signing one per request was 10,000 RSA signatures)."""
    return {
        role: {"Authorization": f"Bearer {cluster.token(*caller)}"} if caller else {}
        for role, caller in CALLERS.items()
    }


def assert_the_gateways_own_answer(case, response, role: str, caller, roles) -> None:
    """An answer KrakenD gave itself (no backend saw the request): one of its refusals."""
    status = response.status_code
    path = unquote(response.request.path_url.split("?")[0])
    if status == 400 and CONTROL.search(path):
        assert response.json()["code"] == "bad_path", case.as_curl_command()  # see CONTROL
        TALLY["gateway fuzz control characters"] += 1
        return
    if status == 400 and URL_SPECIAL.search(path):
        return
    coding = {k.lower(): v for k, v in response.request.headers.items()}.get("transfer-encoding")
    if status == 501 and coding is not None and coding.strip().lower() != "chunked":
        # A transfer coding the server does not know (a fuzzed empty one): Go's HTTP server
        # refuses it before KrakenD sees the request, with 501, as RFC 9112 6.1 says it should.
        assert b"Unsupported transfer encoding" in response.content, case.as_curl_command()
        return
    assert status in GATEWAY_REFUSALS, (
        f"the gateway itself answered {status} as {role}: {case.as_curl_command()}"
    )
    if status == 401:
        assert caller is None
    if status == 403:
        assert role not in roles


@ENROLLMENT.parametrize()
@FUZZ_SETTINGS
def test_enrollment_through_the_gateway(case, cluster: Cluster, seeded, session, bearer):
    TALLY["gateway fuzz enrollment cases"] += 1
    roles = case.operation.definition.raw.get("x-roles", [])
    base_url = cluster.enroll_gateway.url + "/enroll_api"
    for role, caller in CALLERS.items():
        headers = dict(bearer[role])
        response = case.call(base_url=base_url, session=session, headers=headers)
        TALLY["gateway fuzz requests"] += 1
        if "x-request-id" in response.headers:  # a service answered: it echoes its request id
            case.validate_response(response, checks=CHECKS, headers=headers)
        else:
            assert_the_gateways_own_answer(case, response, role, caller, roles)


@AUTH.parametrize()
@FUZZ_SETTINGS
def test_auth_through_the_gateway(case, cluster: Cluster, session, bearer):
    TALLY["gateway fuzz auth cases"] += 1
    roles = case.operation.definition.raw.get("x-roles")
    base_url = cluster.auth_gateway.url + "/auth_api"
    if roles is None:  # public: every answer is the service's
        response = case.call(base_url=base_url, session=session)
        TALLY["gateway fuzz requests"] += 1
        case.validate_response(response, checks=CHECKS)
        return
    for role, caller in CALLERS.items():  # the registrar's accounts: the gateway checks roles
        headers = dict(bearer[role])
        response = case.call(base_url=base_url, session=session, headers=headers)
        TALLY["gateway fuzz requests"] += 1
        # A service's answer echoes its request id; the gateway's own refusals carry none (its
        # path guard's 400 is JSON too, so the content type no longer tells them apart).
        if "x-request-id" in response.headers:
            case.validate_response(response, checks=CHECKS, headers=headers)
        else:
            assert_the_gateways_own_answer(case, response, role, caller, roles)
