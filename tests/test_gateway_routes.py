"""The KrakenD configs under etc/ against the services they front.

Each gateway config is a flexible-configuration template (etc/<gateway>/krakend.tmpl with its
settings/ and templates/). The tests render it, as KrakenD would at start-up, with per-run values
that differ from the committed defaults, and check the result: every enrollment route exactly once
at /enroll_api + route with its roles, the auth routes under /auth_api, one validator, the gateway
secret on every backend request and never taken from the client, statuses passed through, each
route's body limit its service's, the gateway's own health answer, no token from a cookie, the
plugins (the path guard, the JSON body of the gateway's own errors).

KrakenD itself renders and checks them: `krakend check -t -d` (parse, dump, and mount every
endpoint on a real gin router for a second, which refuses conflicting paths), with FC_OUT naming
the file it writes the rendered config to; the tests read that file.
"""

import inspect
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import uvicorn
from fastapi.routing import APIRoute

from app.common import idempotency
from app.common.identity import (
    GATEWAY_SECRET_HEADER,
    IDENTITY_HEADERS,
    ROLES_HEADER,
    USER_ID_HEADER,
    USERNAME_HEADER,
)
from app.common.limits import MAX_BODY_BYTES
from app.common.observe import REQUEST_ID_HEADER
from app.enrollment.deps import CallerFirst
from app.enrollment.routes import router as enrollment_router
from harness.gateway import KRAKEND, PLUGINS, render

ROOT = Path(__file__).resolve().parent.parent
SECRET = "secret-of-this-test-run-0123456789abcdef"
ENROLL_HOSTS = ["http://127.0.0.1:15000", "http://127.0.0.1:15001", "http://127.0.0.1:15002"]
AUTH_PRIMARY = "http://127.0.0.1:15100"
AUTH_REPLICAS = ["http://127.0.0.1:15101", "http://127.0.0.1:15102"]
IDENTITY_CLAIMS = [
    ["sub", USER_ID_HEADER],
    ["preferred_username", USERNAME_HEADER],
    ["roles", ROLES_HEADER],
]

Endpoint = tuple[str, str]  # (method, gateway path)


class Rendering(NamedTuple):
    ok: bool
    log: str
    config: dict | None


Renderer = Callable[[str, dict[str, str]], Rendering]


def settings(gateway: str, name: str) -> dict:
    return json.loads((ROOT / "etc" / gateway / "settings" / f"{name}.json").read_text())


def service_routes(router) -> dict[Endpoint, APIRoute]:
    """Every (method, path) a service's router answers."""
    routes: dict[Endpoint, APIRoute] = {}
    for route in router.routes:
        assert isinstance(route, APIRoute)
        for method in route.methods:
            routes[(method, route.path)] = route
    return routes


def params(route: APIRoute, kind: str) -> set[str]:
    """Names of the query or header parameters a route reads, its dependencies' included. An
    enrollment route identifies its caller itself (`CallerFirst`), from the identity headers
    (cheaper than declared header parameters), so such a route reads those; and a header a route
    reads straight from the request is declared in its OpenAPI schema (`openapi_extra`
    parameters: every write's Idempotency-Key)."""
    found: set[str] = set()
    if kind == "header_params" and isinstance(route, CallerFirst):
        found |= {*IDENTITY_HEADERS, GATEWAY_SECRET_HEADER}
    if kind == "header_params":
        declared = (route.openapi_extra or {}).get("parameters", [])
        found |= {p["name"] for p in declared if p["in"] == "header"}
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        found |= {param.alias for param in getattr(dependant, kind)}
        pending.extend(dependant.dependencies)
    return found


def lower(names: list[str]) -> set[str]:
    return {name.lower() for name in names}


# rendering


@pytest.fixture(scope="session")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    """A function rendering etc/<gateway>/krakend.tmpl with extra environment variables."""
    if not KRAKEND.exists():
        pytest.fail(f"{KRAKEND} is missing: ./bin/test builds it")

    def rendering(gateway: str, extra_env: dict[str, str]) -> Rendering:
        out = tmp_path_factory.mktemp(gateway) / "krakend.json"
        result = render(gateway, extra_env, out)
        if result.returncode != 0:
            return Rendering(False, result.stdout + result.stderr, None)
        return Rendering(True, result.stdout + result.stderr, json.loads(out.read_text()))

    return rendering


def rendered(renderer: Renderer, gateway: str, extra_env: dict[str, str]) -> dict:
    result = renderer(gateway, extra_env)
    assert result.ok and result.config, f"{gateway} config did not render:\n{result.log}"
    return result.config


@pytest.fixture(scope="session")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run") / "jwks.json"


@pytest.fixture(scope="session")
def enroll_config(renderer: Renderer, jwks: Path) -> dict:
    return rendered(
        renderer,
        "enroll",
        {
            "GATEWAY_SECRET": SECRET,
            "GATEWAY_ENROLL_PORT": "15500",
            "GATEWAY_ENROLL_BACKENDS": ",".join(ENROLL_HOSTS),
            "GATEWAY_JWKS_FILE": str(jwks),
        },
    )


@pytest.fixture(scope="session")
def auth_config(renderer: Renderer, jwks: Path) -> dict:
    return rendered(
        renderer,
        "auth",
        {
            "GATEWAY_SECRET": SECRET,
            "GATEWAY_JWKS_FILE": str(jwks),
            "GATEWAY_AUTH_PORT": "15400",
            "GATEWAY_AUTH_PRIMARY": AUTH_PRIMARY,
            "GATEWAY_AUTH_REPLICAS": ",".join(AUTH_REPLICAS),
        },
    )


@pytest.fixture(params=["enroll", "auth"])
def config(request: pytest.FixtureRequest) -> dict:
    return request.getfixturevalue(f"{request.param}_config")


HEALTH = "/health"  # the gateway's own (etc/krakend/templates/service.tmpl), no API route


def endpoints(config: dict) -> Iterator[dict]:
    """The API's endpoints: every one but the gateway's own health endpoint."""
    yield from (e for e in config["endpoints"] if e["endpoint"] != HEALTH)


def by_route(config: dict) -> dict[Endpoint, dict]:
    found: dict[Endpoint, dict] = {}
    for endpoint in endpoints(config):
        key = (endpoint["method"], endpoint["endpoint"])
        assert key not in found, f"{key} is declared twice"
        found[key] = endpoint
    return found


# the enrollment gateway


def test_enroll_settings_list_every_enrollment_route_with_its_roles():
    """Checked on the settings alone, so a typo shows even where nothing can render."""
    prefix = settings("enroll", "endpoints")["prefix"]
    declared = {
        (r["method"], prefix + r["path"]): sorted(r["roles"])
        for r in settings("enroll", "endpoints")["routes"]
    }
    expected = {
        (method, prefix + path): sorted(route.openapi_extra["x-roles"])
        for (method, path), route in service_routes(enrollment_router).items()
    }
    assert declared == expected


def test_enroll_gateway_has_every_enrollment_route_once_with_its_roles(enroll_config):
    gateway = {
        key: sorted(endpoint["extra_config"]["auth/validator"]["roles"])
        for key, endpoint in by_route(enroll_config).items()
    }
    expected = {
        (method, "/enroll_api" + path): sorted(route.openapi_extra["x-roles"])
        for (method, path), route in service_routes(enrollment_router).items()
    }
    assert gateway == expected


def test_the_enrollment_routes_for_services_are_on_no_gateway(enroll_config):
    from app.enrollment.routes import internal

    internal_routes = set(service_routes(internal))
    assert internal_routes == {("PUT", "/internal/users/{user_id}")}
    assert all(not route.include_in_schema for route in internal.routes)
    gateway_backends = {
        (endpoint["backend"][0]["method"], endpoint["backend"][0]["url_pattern"])
        for endpoint in endpoints(enroll_config)
    }
    assert not internal_routes & gateway_backends


def test_enroll_gateway_forwards_each_route_to_the_same_route_on_three_instances(enroll_config):
    for (method, path), endpoint in by_route(enroll_config).items():
        (backend,) = endpoint["backend"]
        assert backend["url_pattern"] == path.removeprefix("/enroll_api")
        assert backend["method"] == method
        assert backend["host"] == ENROLL_HOSTS


def test_enroll_gateway_passes_exactly_the_query_strings_each_route_reads(enroll_config):
    routes = service_routes(enrollment_router)
    for (method, path), endpoint in by_route(enroll_config).items():
        route = routes[(method, path.removeprefix("/enroll_api"))]
        assert sorted(endpoint["input_query_strings"]) == sorted(params(route, "query_params"))


def test_enroll_gateway_caches_exactly_the_routes_whose_answers_say_so(enroll_config):
    """The gateway's cache is on for the routes that declare `cache_seconds` (their answers are
    the same for every caller and carry Cache-Control), and on no other: a per-user answer kept
    there would be served to the next caller of the same URL."""
    cached = {
        key
        for key, endpoint in by_route(enroll_config).items()
        if "qos/http-cache" in endpoint["backend"][0]["extra_config"]
    }
    declared = {
        (method, "/enroll_api" + path)
        for (method, path), route in service_routes(enrollment_router).items()
        if route.openapi_extra.get("x-cache-seconds")
    }
    assert cached == declared == {("GET", "/enroll_api/courses"), ("GET", "/enroll_api/sections")}
    for key in cached:
        block = by_route(enroll_config)[key]["backend"][0]["extra_config"]["qos/http-cache"]
        assert block["max_items"] > 0 and block["max_size"] > 0  # bounded, whatever the queries
    for route in service_routes(enrollment_router).values():
        assert "{" not in route.path or not route.openapi_extra.get("x-cache-seconds")


def test_every_enroll_endpoint_uses_the_one_validator(enroll_config):
    blocks = []
    for endpoint in endpoints(enroll_config):
        assert list(endpoint["extra_config"]) == ["auth/validator"]
        block = dict(endpoint["extra_config"]["auth/validator"])
        assert block.pop("roles"), endpoint["endpoint"]
        blocks.append(block)
    assert all(block == blocks[0] for block in blocks)

    jwt = settings("enroll", "jwt")
    validator = blocks[0]
    assert validator["alg"] == "RS256"
    assert validator["jwk_local_path"].endswith("/jwks.json")
    assert Path(validator["jwk_local_path"]).is_absolute()  # GATEWAY_JWKS_FILE, not the default
    assert validator["disable_jwk_security"] is True  # required with jwk_local_path
    assert validator["cache"] is False  # cache with jwk_local_path is a start-up error
    assert validator["issuer"] == jwt["issuer"] != ""  # an empty issuer would not be checked
    assert validator["audience"] == jwt["audience"] != []
    assert validator["roles_key"] == "roles"
    assert validator["propagate_claims"] == IDENTITY_CLAIMS
    # krakend-jose reads a cookie when there is no Authorization header, `access_token` unless
    # cookie_key names another; Go's cookie parser skips every cookie whose name is not an HTTP
    # token, so a cookie_key that is not one is never found.
    assert not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", validator["cookie_key"])


def test_enroll_backends_receive_the_identity_headers_the_service_reads(enroll_config):
    routes = service_routes(enrollment_router)
    for (method, path), endpoint in by_route(enroll_config).items():
        read = params(routes[(method, path.removeprefix("/enroll_api"))], "header_params")
        assert lower(endpoint["input_headers"]) == lower(
            ["Content-Type", "Content-Length", REQUEST_ID_HEADER, *(read - {GATEWAY_SECRET_HEADER})]
        )
        assert lower(endpoint["input_headers"]) >= lower(
            [USER_ID_HEADER, USERNAME_HEADER, ROLES_HEADER]
        )


# the auth gateway


def test_auth_gateway_routes(auth_config):
    # Everything goes to the replicas, which relay to the LiteFS primary what only it can do
    # (503 when it is down): KrakenD has no health checks, and a request it sent to a dead
    # primary would be its bare 500.
    assert {key: e["backend"][0]["host"] for key, e in by_route(auth_config).items()} == {
        ("POST", "/auth_api/register"): AUTH_REPLICAS,
        ("POST", "/auth_api/login"): AUTH_REPLICAS,
        ("POST", "/auth_api/refresh"): AUTH_REPLICAS,
        ("POST", "/auth_api/logout"): AUTH_REPLICAS,
        ("GET", "/auth_api/.well-known/jwks.json"): AUTH_REPLICAS,
        ("GET", "/auth_api/accounts"): AUTH_REPLICAS,
        ("GET", "/auth_api/accounts/{user_id}"): AUTH_REPLICAS,
        ("PATCH", "/auth_api/accounts/{user_id}"): AUTH_REPLICAS,
        ("PUT", "/auth_api/accounts/{user_id}/password"): AUTH_REPLICAS,
        ("GET", "/auth_api/audit"): AUTH_REPLICAS,
    }
    for (method, path), endpoint in by_route(auth_config).items():
        (backend,) = endpoint["backend"]
        assert backend["url_pattern"] == path.removeprefix("/auth_api")
        assert backend["method"] == method


def test_auth_gateway_checks_the_roles_each_auth_route_declares(auth_config, enroll_config):
    """The account routes are the registrar's; the sign-in routes are public (no validator). A
    validator here is the enroll gateway's, with the route's roles."""
    auth_routes = pytest.importorskip("app.auth.routes")
    declared = {
        (method, "/auth_api" + path): (route.openapi_extra or {}).get("x-roles")
        for (method, path), route in service_routes(auth_routes.router).items()
        if route.include_in_schema
    }
    enroll_validator = dict(enroll_config["endpoints"][0]["extra_config"]["auth/validator"])
    enroll_validator.pop("roles")
    for key, endpoint in by_route(auth_config).items():
        roles = declared[key]
        if roles is None:
            assert "extra_config" not in endpoint, key
            continue
        validator = dict(endpoint["extra_config"]["auth/validator"])
        assert validator.pop("roles") == roles == ["registrar"], key
        assert validator == enroll_validator, key
        assert "authorization" in lower(endpoint["input_headers"]), key


def test_auth_gateway_matches_the_auth_service(auth_config):
    auth_routes = pytest.importorskip("app.auth.routes")
    every_route = service_routes(auth_routes.router)
    # Service-to-service routes (out of the schema) are never routed by a gateway.
    routes = {key: route for key, route in every_route.items() if route.include_in_schema}
    internal = set(every_route) - set(routes)
    assert internal == {("GET", "/internal/users/{user_id}"), ("GET", "/internal/users")}
    gateway = by_route(auth_config)
    assert set(gateway) == {(method, "/auth_api" + path) for method, path in routes}
    for (method, path), endpoint in gateway.items():
        route = routes[(method, path.removeprefix("/auth_api"))]
        read = params(route, "header_params") - {GATEWAY_SECRET_HEADER}
        passed = ["Content-Type", "Content-Length", REQUEST_ID_HEADER, *read]
        assert lower(endpoint["input_headers"]) == lower(passed)
        assert sorted(endpoint["input_query_strings"]) == sorted(params(route, "query_params"))


# both gateways: Idempotency-Key


def test_every_write_passes_the_idempotency_key_and_no_read_does(config):
    """KrakenD drops every header an endpoint does not list: without Idempotency-Key in a write's
    input_headers, the key a client sends would never reach the service, and its retry would be
    made again (issue 26). A read has no use for it."""
    writes = 0
    for (method, path), endpoint in by_route(config).items():
        passes = idempotency.HEADER in endpoint["input_headers"]
        assert passes == (method != "GET"), (method, path)
        writes += passes
    assert writes >= 5


def test_the_browser_may_send_the_key_and_read_whether_an_answer_was_replayed(config):
    cors = config["extra_config"]["security/cors"]
    assert idempotency.HEADER in cors["allow_headers"]
    assert idempotency.REPLAYED_HEADER in cors["expose_headers"]


# the README


def readme_table(heading: str) -> dict[Endpoint, tuple[str, list[str]]]:
    """The README route table headed `heading`: (method, path) -> (roles, query)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows: dict[Endpoint, tuple[str, list[str]]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        route, roles, query = (cell.strip() for cell in line.strip("|").split("|"))
        method, path = route.split()
        rows[(method, path)] = (roles, [q.strip() for q in query.split(",") if q.strip()])
    return rows


@pytest.mark.parametrize("gateway", ["enroll", "auth"])
def test_the_readme_tables_list_every_gateway_route_with_its_roles_and_query(gateway):
    table = readme_table(f"{gateway} gateway route")
    routes = settings(gateway, "endpoints")["routes"]
    assert set(table) == {(r["method"], r["path"]) for r in routes}
    for r in routes:
        roles, query = table[(r["method"], r["path"])]
        if "roles" in r:
            assert roles == ", ".join(r["roles"])
        else:
            assert roles.startswith("anyone")
        assert query == r.get("query", [])


# both gateways


def test_backend_answers_reach_the_client_unchanged(config):
    for endpoint in endpoints(config):
        assert endpoint["output_encoding"] == "no-op"
        assert [backend["encoding"] for backend in endpoint["backend"]] == ["no-op"]


def test_gateway_sets_the_secret_and_a_request_id_on_every_backend_request(config):
    """The secret by a martian modifier; the request id is the plugin gatewayerrors' (see
    test_the_gateways_load_their_plugins), passed on by every endpoint."""
    for endpoint in endpoints(config):
        assert REQUEST_ID_HEADER in endpoint["input_headers"]
        for backend in endpoint["backend"]:
            others = {k: v for k, v in backend["extra_config"].items() if k != "qos/http-cache"}
            body_limit = others["modifier/martian"]["fifo.Group"]["modifiers"][0]
            assert list(body_limit) == ["header.RegexFilter"]  # test_body_limits_are_the_services
            assert others == {
                "modifier/martian": {
                    "fifo.Group": {
                        "scope": ["request", "response"],
                        "aggregateErrors": True,
                        "modifiers": [
                            body_limit,
                            {
                                "header.Modifier": {
                                    "scope": ["request"],
                                    "name": GATEWAY_SECRET_HEADER,
                                    "value": SECRET,
                                }
                            },
                        ],
                    }
                }
            }


def test_no_client_header_passes_as_the_secret_and_nothing_passes_by_wildcard(config):
    for endpoint in endpoints(config):
        assert GATEWAY_SECRET_HEADER.lower() not in lower(endpoint["input_headers"])
        assert "*" not in endpoint["input_headers"]
        assert "*" not in endpoint["input_query_strings"]
        for backend in endpoint["backend"]:
            assert "input_headers" not in backend


def test_router_options(config):
    for endpoint in endpoints(config):
        assert not endpoint["endpoint"].endswith("/")
    assert config["extra_config"]["router"]["disable_redirect_trailing_slash"] is True
    assert config["extra_config"]["router"]["disable_redirect_fixed_path"] is True
    # The address passed on in X-Forwarded-For is the connection's peer, never what a client
    # sent (gin believes a client's X-Forwarded-For by default).
    assert config["extra_config"]["router"]["forwarded_by_client_ip"] is False
    # A backend connection is dropped by the gateway before uvicorn closes it as idle, so no
    # request is sent down a connection that is closing (a lost POST would be a 500).
    uvicorn_keep_alive = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    idle = config["idle_connection_timeout"]
    assert idle.endswith("s") and 0 < float(idle[:-1]) < uvicorn_keep_alive
    assert config["version"] == 3
    assert config["listen_ip"] == "127.0.0.1"


def test_per_run_ports_are_used(enroll_config, auth_config):
    assert (enroll_config["port"], auth_config["port"]) == (15500, 15400)


def test_defaults_are_the_spec_ports_and_the_init_jwks(renderer):
    enroll = rendered(renderer, "enroll", {"GATEWAY_SECRET": SECRET})
    user = rendered(renderer, "auth", {"GATEWAY_SECRET": SECRET})
    assert (enroll["port"], user["port"]) == (5500, 5400)
    first = enroll["endpoints"][0]
    assert first["backend"][0]["host"] == [f"http://127.0.0.1:{p}" for p in (5000, 5001, 5002)]
    assert first["extra_config"]["auth/validator"]["jwk_local_path"] == "var/gateway/jwks.json"
    register = by_route(user)[("POST", "/auth_api/register")]
    assert register["backend"][0]["host"] == ["http://127.0.0.1:5101", "http://127.0.0.1:5102"]


def metrics_exporter(config: dict) -> dict:
    (exporter,) = config["extra_config"]["telemetry/opentelemetry"]["exporters"]["prometheus"]
    return exporter


@pytest.mark.parametrize("gateway", ["enroll", "auth"])
def test_the_metrics_are_on_loopback_unless_an_address_is_given(renderer, gateway):
    """bin/multihost gives each test host's address (GATEWAY_METRICS_IP), where the
    Prometheus of the hosts' network scrapes; anything else than an IPv4 address is refused."""
    env = {"GATEWAY_SECRET": SECRET}
    assert metrics_exporter(rendered(renderer, gateway, env))["host"] == "127.0.0.1"
    on_host = rendered(renderer, gateway, env | {"GATEWAY_METRICS_IP": "198.18.0.2"})
    assert metrics_exporter(on_host)["host"] == "198.18.0.2"
    for bad in ("localhost", "198.18.0", "198.18.0.2:9091", '1.2.3.4", "x'):
        refused = renderer(gateway, env | {"GATEWAY_METRICS_IP": bad})
        assert not refused.ok and refused.config is None, bad
        assert "GATEWAY_METRICS_IP is not an IPv4 address" in refused.log, refused.log


@pytest.mark.parametrize("gateway", ["enroll", "auth"])
@pytest.mark.parametrize("secret", [None, "", "too-short"])
def test_a_gateway_without_the_secret_does_not_start(renderer, gateway, secret):
    result = renderer(gateway, {} if secret is None else {"GATEWAY_SECRET": secret})
    assert not result.ok
    assert result.config is None


# what the gateways refuse themselves, and what they do not tell


def body_limit_regex(backend: dict) -> re.Pattern:
    (body_limit,) = [
        m["header.RegexFilter"]
        for m in backend["extra_config"]["modifier/martian"]["fifo.Group"]["modifiers"]
        if "header.RegexFilter" in m
    ]
    assert body_limit["header"] == "Content-Length"
    assert body_limit["scope"] == ["request", "response"]
    assert body_limit["modifier"]["fifo.Group"]["modifiers"] == [
        # skips the round trip; rootPath cannot exist, so no file is ever served
        {"static.Modifier": {"scope": ["request", "response"], "rootPath": "/proc/self/no-files"}},
        {"status.Modifier": {"scope": ["response"], "statusCode": 413}},
    ]
    return re.compile(body_limit["regex"])  # RE2's syntax here is Python's too


def service_body_limits(config: dict) -> dict[Endpoint, int]:
    """Each gateway route's service limit: the common one (app/common/limits.py), or the larger
    one a route declares (`x-max-body-bytes` in its OpenAPI schema)."""
    auth_routes = pytest.importorskip("app.auth.routes")
    routers = {"/enroll_api": enrollment_router, "/auth_api": auth_routes.router}
    limits = {}
    for prefix, router in routers.items():
        for (method, path), route in service_routes(router).items():
            extra = route.openapi_extra or {}
            limits[(method, prefix + path)] = extra.get("x-max-body-bytes", MAX_BODY_BYTES)
    return {key: limits[key] for key in by_route(config)}


def test_each_route_refuses_exactly_the_bodies_its_service_would(config):
    """A body the gateway lets through is one the service reads whole (a larger one was now and
    then KrakenD's bare 500), and one the service takes is never refused at the gateway."""
    limits = service_body_limits(config)
    assert MAX_BODY_BYTES in limits.values()
    for key, endpoint in by_route(config).items():
        limit = limits[key]
        over = body_limit_regex(endpoint["backend"][0])
        for length in (0, 1, 9, limit // 10, limit - 1, limit):
            for text in (str(length), f"000{length}"):
                assert not over.fullmatch(text), (key, text)
        for length in (limit + 1, limit + 9, limit * 10, limit * 10 + 1, 2**63 - 1):
            for text in (str(length), f"000{length}"):
                assert over.fullmatch(text), (key, text)
        assert not over.fullmatch("-1") and not over.fullmatch(f"{limit + 1} ")
        for n in range(0, 10 * limit, limit // 97 + 1):  # and everything between, sampled
            assert bool(over.fullmatch(str(n))) == (n > limit), (key, n)


def test_the_csv_import_takes_more_than_the_common_limit(enroll_config):
    limits = service_body_limits(enroll_config)
    larger = {key: limit for key, limit in limits.items() if limit != MAX_BODY_BYTES}
    assert list(larger) == [("POST", "/enroll_api/completed-courses")]


def test_a_limit_for_a_route_that_does_not_exist_stops_the_gateway(renderer, tmp_path):
    """settings/limits.json names routes by method and path: a renamed route must not silently
    lose its limit."""
    settings_dir = tmp_path / "settings"
    shutil.copytree(ROOT / "etc" / "enroll" / "settings", settings_dir)
    limits = settings("enroll", "limits")
    limits["routes"]["POST /no-such-route"] = 1024
    (settings_dir / "limits.json").write_text(json.dumps(limits))

    result = renderer("enroll", {"GATEWAY_SECRET": SECRET, "FC_SETTINGS": str(settings_dir)})

    assert not result.ok
    assert "POST /no-such-route" in result.log


def test_the_health_endpoint_is_the_gateways_own_and_tells_nothing_else(config):
    router = config["extra_config"]["router"]
    # lura's /__health answers time.Now().String(), whose "m=+..." is the gateway's uptime.
    assert router["disable_health"] is True
    (health,) = [e for e in config["endpoints"] if e["endpoint"] == HEALTH]
    assert health["method"] == "GET"
    assert health["extra_config"] == {
        "modifier/lua-proxy": {
            "skip_next": True,  # the backend below is never called
            "post": "response.load():data():set('status', 'ok')",
        }
    }
    (backend,) = health["backend"]
    assert backend["host"] == ["http://127.0.0.1:65535"]
    assert router["logger_skip_paths"] == [HEALTH]


def test_the_gateways_load_their_plugins(config):
    """The HTTP server plugins (etc/krakend/plugins/NAME, built by bin/lib.sh into
    .tools/krakend-plugins): pathguard answers a control character in the path with 400
    `bad_path` itself (without it, KrakenD's empty 500); gatewayerrors, outermost, gives every
    request its id and the gateway's own errors a JSON body, a 500 after the endpoints' timeout
    being a 504 (tests/e2e/test_gateway_hardening.py and test_gateway_errors.py send them through
    both gateways)."""
    assert config["plugin"] == {"pattern": ".so", "folder": str(PLUGINS)}
    assert config["extra_config"]["plugin/http-server"] == {
        "name": ["pathguard", "gatewayerrors"],
        "gatewayerrors": {"timeout": config["timeout"]},
    }
    assert {endpoint.get("timeout", config["timeout"]) for endpoint in endpoints(config)} == {
        config["timeout"]
    }
    # Every plugin bin/lib.sh builds (one directory each) is one the gateways use.
    sources = ROOT / "etc" / "krakend" / "plugins"
    built = sorted(p.name for p in sources.iterdir() if (p / "main.go").is_file())
    assert built == ["gatewayerrors", "pathguard"]


def test_the_plugin_folder_defaults_to_where_bin_lib_builds_them(renderer):
    enroll = rendered(renderer, "enroll", {"GATEWAY_SECRET": SECRET, "GATEWAY_PLUGIN_DIR": ""})
    assert enroll["plugin"]["folder"] == ".tools/krakend-plugins"
    assert (ROOT / enroll["plugin"]["folder"]) == PLUGINS


def test_answers_do_not_name_the_krakend_version(config):
    """X-Krakend says "Version undefined" (CE cannot drop the header itself)."""
    assert config["extra_config"]["router"]["hide_version_header"] is True
