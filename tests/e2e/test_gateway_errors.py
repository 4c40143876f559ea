"""Every error the two real gateways (KrakenD) make themselves is JSON in the services' one error
shape, {"detail", "code", "request_id"} (issue 26): a refused token (401), a refused role (403), a
path or method no route has (404, 405), a path KrakenD cannot pass on (400), a body over the
route's limit (413), and a backend that failed (500), whose body says that the request may or may
not have been applied and that a retry with the same Idempotency-Key is safe. The plugin
gatewayerrors (etc/krakend/plugins/gatewayerrors) writes them, and gives every request the id it
passes on to the service; the services' own errors, a 401 among them, pass through as the service
wrote them. (A 504 needs a backend silent for the whole 35 s timeout: the plugin's Go tests have
it, with lura's own endpoint handler.)

As everywhere in tests/e2e: an X-Request-Id header says that a service answered.
"""

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.common.identity import (
    GATEWAY_SECRET_HEADER,
    ROLES_HEADER,
    USER_ID_HEADER,
    USERNAME_HEADER,
)
from app.common.limits import MAX_BODY_BYTES
from harness import http
from harness.cluster import Cluster
from harness.procs import stop, wait_http

pytestmark = pytest.mark.e2e

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MAY_BE_APPLIED = (
    "the request may or may not have been applied; retrying it with the same Idempotency-Key"
    " is safe"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def gateway_error(reply: httpx.Response) -> tuple[int, str]:
    """The status and code of an error the gateway made itself, once its shape is checked: JSON,
    exactly detail, code and a request id of the gateway's (a UUID), and no service's
    X-Request-Id header."""
    assert reply.headers["content-type"] == "application/json", reply.headers
    body = reply.json()
    assert set(body) == {"detail", "code", "request_id"}, body
    assert body["detail"] and UUID.match(body["request_id"]), body
    assert "x-request-id" not in reply.headers, reply.headers
    return reply.status_code, body["code"]


@pytest.fixture(scope="module")
def enroll(cluster: Cluster) -> str:
    return cluster.enroll_gateway.url + "/enroll_api"


@pytest.fixture(scope="module")
def auth(cluster: Cluster) -> str:
    return cluster.auth_gateway.url + "/auth_api"


@pytest.fixture(scope="module")
def student(cluster: Cluster) -> dict[str, str]:
    return bearer(cluster.token(9, "ajohnson", "student"))


@pytest.fixture(scope="module")
def registrar(cluster: Cluster) -> dict[str, str]:
    return bearer(cluster.token(1, "rhenderson", "registrar"))


# a refused token or role


def test_no_token_is_401_unauthenticated(enroll, auth):
    for url in (enroll + "/users/9/enrollments", auth + "/accounts"):
        reply = http.get(url)
        assert gateway_error(reply) == (401, "unauthenticated"), url
        assert "bearer token" in reply.json()["detail"]


def test_an_expired_or_garbage_token_is_401_invalid_token(cluster: Cluster, enroll, auth):
    expired = cluster.token(9, "ajohnson", "student", exp=int(time.time()) - 60)
    for token in (expired, "not-a-token"):
        for url in (enroll + "/users/9/enrollments", auth + "/accounts"):
            reply = http.get(url, headers=bearer(token))
            assert gateway_error(reply) == (401, "invalid_token"), (url, token)
            assert "invalid or expired" in reply.json()["detail"]


def test_a_student_on_a_registrars_route_is_403_forbidden(enroll, auth, student):
    for url in (enroll + "/users", auth + "/accounts"):
        reply = http.get(url, headers=student)
        assert gateway_error(reply) == (403, "forbidden"), url


# no such route


def test_an_unknown_path_is_404_no_route(enroll, auth, student):
    for url in (
        enroll + "/nothing-here",
        auth + "/nothing-here",
        enroll.removesuffix("/enroll_api"),
    ):
        assert gateway_error(http.get(url, headers=student)) == (404, "no_route"), url


def test_a_method_no_route_has_is_405_naming_the_ones_it_has(enroll, auth, registrar):
    sections = http.put(enroll + "/sections", headers=registrar, json={})
    login = http.get(auth + "/login")

    assert gateway_error(sections) == (405, "method_not_allowed")
    assert gateway_error(login) == (405, "method_not_allowed")
    assert "does not take PUT; it takes GET, POST" in sections.json()["detail"]
    assert sections.headers["allow"] == "GET, POST"
    assert "it takes POST" in login.json()["detail"]


def test_a_path_krakend_cannot_pass_on_is_400_and_a_control_character_400_bad_path(enroll, student):
    """A parameter that decodes to '%' is lura's own 400 (`error: encoded url params`, in text);
    one with a control character is the plugin pathguard's, which carries the id too."""
    escaped = http.get(enroll + "/sections/%2541", headers=student)
    control = http.get(enroll + "/sections/%00", headers=student)

    assert gateway_error(escaped) == (400, "bad_request")
    assert gateway_error(control) == (400, "bad_path")


# a body over the limit


def test_a_body_over_the_limit_is_413_body_too_large(enroll, auth, registrar):
    over = b'{"junk": "' + b"x" * MAX_BODY_BYTES + b'"}'
    json_type = {"Content-Type": "application/json"}
    for url, headers in ((enroll + "/sections", registrar), (auth + "/login", {})):
        reply = http.post(url, content=over, headers={**headers, **json_type}, timeout=30)
        assert gateway_error(reply) == (413, "body_too_large"), url


# a backend that failed


@pytest.fixture
def instance_down(cluster: Cluster) -> Iterator[int]:
    """Enrollment instance 1 stopped for good, its listening socket closed, so that the gateway's
    requests to it are refused at once (a killed uvicorn alone is restarted on the same socket,
    and requests wait for it); then started again exactly as the cluster started it (its command,
    environment and directory, read from /proc), and in the cluster's list, which stops it at the
    end."""
    index = 1
    supervisor = cluster.enrollment.procs[index]
    proc = Path(f"/proc/{supervisor.pid}")
    command = [arg.decode() for arg in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
    env = dict(
        entry.decode().split("=", 1)
        for entry in (proc / "environ").read_bytes().split(b"\0")
        if entry
    )
    cwd = os.readlink(proc / "cwd")
    stop([supervisor])
    try:
        yield index
    finally:
        with cluster.enrollment.log(index).open("ab") as out:
            again = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        cluster.enrollment.procs[index] = again
        wait_http(cluster.enrollment.urls[index] + "/health", again, status=200)


def test_a_backend_that_failed_is_500_backend_failed_saying_a_retry_is_safe(
    cluster: Cluster, enroll, student, instance_down
):
    """KrakenD balances over the three instances and never retries: with one down, about a
    third of the requests fail."""
    answers = [http.get(enroll + "/sections/1", headers=student) for _ in range(40)]
    failed = [reply for reply in answers if reply.status_code != 200]

    assert failed, "no request went to the stopped instance"
    for reply in failed:
        assert gateway_error(reply) == (500, "backend_failed")
        assert reply.json()["detail"].endswith(MAY_BE_APPLIED)
    assert len({reply.json()["request_id"] for reply in failed}) == len(failed)
    assert all("x-request-id" in reply.headers for reply in answers if reply.status_code == 200)


def test_every_instance_serves_again_after_the_backend_failure(cluster: Cluster):
    for url in cluster.enrollment.urls:
        assert http.get(url + "/health").status_code == 200, url


# the services' own errors


def test_a_services_own_errors_pass_through_as_it_wrote_them(cluster: Cluster, enroll, registrar):
    """A 409 and a 422 through the gateway, byte for byte what the instance answers to the same
    request sent to it directly with the gateway's headers and the same request id; the id is
    the gateway's (a client's own is replaced)."""
    section = {"course_id": 4, "section_number": 97, "instructor_id": 3, "capacity": 5,
               "waitlist_capacity": 0}  # fmt: skip
    first = http.post(enroll + "/sections", json=section, headers=registrar)
    assert first.status_code == 201, first.text
    sent = {**registrar, "X-Request-Id": "chosen-by-the-client"}
    direct_headers = {
        GATEWAY_SECRET_HEADER: cluster.secret,
        USER_ID_HEADER: "1",
        USERNAME_HEADER: "rhenderson",
        ROLES_HEADER: "registrar",
    }
    for body, want in ((section, (409, "section_exists")), ({}, (422, "validation_error"))):
        reply = http.post(enroll + "/sections", json=body, headers=sent)
        rid = reply.headers["x-request-id"]
        direct = http.post(
            cluster.enrollment.urls[0] + "/sections",
            json=body,
            headers={**direct_headers, "X-Request-Id": rid},
        )

        assert (reply.status_code, reply.json()["code"]) == want, reply.text
        assert UUID.match(rid) and reply.json()["request_id"] == rid
        assert (reply.status_code, reply.content) == (direct.status_code, direct.content)
        assert reply.headers["content-type"] == direct.headers["content-type"]


def test_a_services_own_401_is_not_the_gateways(auth):
    """A wrong password: the auth service's 401 `invalid_credentials`, not the gateway's."""
    reply = http.post(auth + "/login", json={"username": "ajohnson", "password": "wrong-wrong"})

    assert (reply.status_code, reply.json()["code"]) == (401, "invalid_credentials"), reply.text
    assert reply.json()["request_id"] == reply.headers["x-request-id"]
