"""The whole cluster of the Procfile, on free loopback ports in one directory laid out like var/:
three enrollment instances on one database file, the three LiteFS auth nodes, both KrakenD
gateways in front of them, and the web app (bin/web), whose origin the gateways allow by CORS.
Used by the end-to-end tests and by ./bin/bench.

Tokens: `token()` signs an access token with the auth service's own private key and its own
claim builder, exactly what POST /login issues, for callers that need hundreds of users without
hundreds of argon2 hashes; `login()` goes through the auth gateway like a person would.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

from app.auth.settings import Settings as AuthSettings
from app.auth.tokens import KeyRing, TokenUse, build_claims
from app.enrollment.catalog.routes import CATALOG_CACHE_SECONDS
from harness import http
from harness.auth_cluster import AuthCluster, wait_for
from harness.db import copy_database, empty_tables, restore_rows
from harness.enroll_cluster import EnrollmentCluster, write_secret
from harness.gateway import Gateway
from harness.procs import ROOT, free_port, stop, wait_http
from harness.seed import DEMO_PASSWORD

ISSUER = AuthSettings.model_fields["issuer"].default
AUDIENCE = AuthSettings.model_fields["audience"].default
ACCESS_TTL = AuthSettings.model_fields["access_ttl_seconds"].default


def cluster_env(name: str) -> str:
    """A value of etc/cluster.env, the environment foreman gives every process."""
    for line in (ROOT / "etc" / "cluster.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    raise KeyError(f"{name} is not set in etc/cluster.env")


def sign_token(
    keys: KeyRing, user_id: int, username: str, *roles: str, use: TokenUse = "access", **claims
) -> str:
    """A token as the auth service issues it, signed with `keys` (see `Cluster.token`)."""
    built = build_claims(
        user_id=user_id,
        username=username,
        given_name=username.title(),
        family_name="Test",
        roles=list(roles),
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl_seconds=ACCESS_TTL,
        token_use=use,
    )
    return keys.sign(built | claims)


def own_checkout(var: Path) -> Path:
    """VAR/checkout: a copy of etc/ and links to this checkout's bin/ and .tools/, from which the
    cluster's gateways run (bin/gateway renders and watches the etc/ beside its bin/). A change to
    the cluster's etc/ restarts its gateways only, and a change to the tracked etc/ (an editor, a
    test, git) restarts none of them. bin/lib.sh takes ROOT as the folder above the script, links
    not followed, so it is VAR/checkout here."""
    checkout = var / "checkout"
    checkout.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "etc", checkout / "etc", symlinks=True)  # jwt.json links stay inside
    for name in ("bin", ".tools"):
        (checkout / name).symlink_to(ROOT / name)
    return checkout


class Cluster:
    def __init__(
        self, var: Path, auth_env: dict[str, str] | None = None, enrollment_instances: int = 3
    ) -> None:
        self.var = var
        secret_file = write_secret(var / "gateway.secret")
        # As foreman does: the auth gateway on this host is the auth nodes' trusted proxy.
        # The enrollment service asks the auth nodes for the accounts the registrar names.
        # The auth primary announces new and changed accounts to the enrollment instances.
        self.enrollment = EnrollmentCluster(var, secret_file, enrollment_instances)
        auth_env = {
            "AUTH_TRUSTED_PROXIES": cluster_env("AUTH_TRUSTED_PROXIES"),
            "AUTH_GATEWAY_SECRET_FILE": str(secret_file),
            "AUTH_ENROLL_URLS": ",".join(self.enrollment.urls),
            **(auth_env or {}),
        }
        self.auth = AuthCluster.create(var, auth_env)
        self.enrollment.auth_urls = [
            self.auth.primary.url,
            *(node.url for node in self.auth.replicas),
        ]
        self.keys = KeyRing.from_file(Path(self.auth.env["AUTH_PRIVATE_JWKS"]))
        jwks = str(var / "gateway" / "jwks.json")
        self.web = WebApp(var, free_port())
        self.enroll_gateway = Gateway(
            "enroll",
            var,
            free_port(),
            {
                "GATEWAY_ENROLL_BACKENDS": ",".join(self.enrollment.urls),
                "GATEWAY_JWKS_FILE": jwks,
                "GATEWAY_WEB_ORIGIN": self.web.url,
                "GATEWAY_METRICS_PORT": str(free_port()),
            },
        )
        self.enroll_gateway.env["GATEWAY_ENROLL_PORT"] = str(self.enroll_gateway.port)
        replicas = [node.url for node in self.auth.replicas]
        self.auth_gateway = Gateway(
            "auth",
            var,
            free_port(),
            {
                "GATEWAY_AUTH_PRIMARY": self.auth.primary.url,
                "GATEWAY_AUTH_REPLICAS": ",".join(replicas),
                "GATEWAY_JWKS_FILE": jwks,
                "GATEWAY_WEB_ORIGIN": self.web.url,
                "GATEWAY_METRICS_PORT": str(free_port()),
            },
        )
        self.auth_gateway.env["GATEWAY_AUTH_PORT"] = str(self.auth_gateway.port)
        self.checkout = own_checkout(var)
        for gateway in self.gateways:
            gateway.command = [str(self.checkout / "bin" / "gateway"), gateway.name]
        self.web.env |= {
            "WEB_ENROLL_API": self.enroll_gateway.url + "/enroll_api",
            "WEB_AUTH_API": self.auth_gateway.url + "/auth_api",
        }

    @property
    def secret(self) -> str:
        return self.enrollment.secret

    @property
    def etc(self) -> Path:
        """The cluster's own etc/, which its gateways render and watch (see own_checkout)."""
        return self.checkout / "etc"

    @property
    def gateways(self) -> list[Gateway]:
        return [self.enroll_gateway, self.auth_gateway]

    def start(self) -> None:
        self.enrollment.start()
        self.auth.start()
        for gateway in self.gateways:
            gateway.start()
        self.web.start()
        # What both databases hold at start (the demo seed), for `reset`.
        self.pristine = self.var / "pristine"
        self.pristine.mkdir(exist_ok=True)
        copy_database(self.enrollment.db, self.pristine / "enroll.db")
        copy_database(self.auth.primary.database, self.pristine / "auth.db")

    @property
    def whole(self) -> bool:
        """Whether every process of the cluster still runs (a test may have stopped one)."""
        procs = [*self.enrollment.procs, *(g.proc for g in self.gateways), self.web.proc]
        nodes = [self.auth.primary, *self.auth.replicas]
        return all(p is not None and p.poll() is None for p in procs) and all(
            node.running for node in nodes
        )

    def reset(self) -> None:
        """Back to the state `start` left, without a restart: both databases hold the demo seed
        again (the auth one replicated to both replicas before this returns), no failed sign-in
        is counted, and every answer the enroll gateway cached before is expired. What a test
        module finds is then what a cluster of its own would give it."""
        restore_rows(self.pristine / "enroll.db", self.enrollment.db)
        restore_rows(self.pristine / "auth.db", self.auth.primary.database)
        empty_tables(self.auth.throttle_database)
        caught_up = wait_for(lambda: self.auth.replicas_caught_up(), 10, interval=0.02)
        assert caught_up is not None, "the auth replicas did not catch up with the reset"
        time.sleep(CATALOG_CACHE_SECONDS)

    def close(self) -> None:
        self.web.stop()
        for gateway in self.gateways:
            gateway.stop()
        self.enrollment.stop()
        self.auth.close()

    def scrape_targets(self) -> dict[str, list[str]]:
        """What Prometheus scrapes of this cluster, by job of etc/prometheus/prometheus.yml."""
        nodes = [self.auth.primary, *self.auth.replicas]
        return {
            "enrollment": [url.removeprefix("http://") for url in self.enrollment.urls],
            "auth": [f"127.0.0.1:{node.auth_port}" for node in nodes],
            "litefs": [f"127.0.0.1:{node.litefs_port}" for node in nodes],
            "gateway": [f"127.0.0.1:{g.env['GATEWAY_METRICS_PORT']}" for g in self.gateways],
            # The cluster runs no notifier of its own (harness/mail.py's MailStack starts one
            # beside it, for the modules that read mail).
            "notifier": [],
        }

    def token(
        self, user_id: int, username: str, *roles: str, use: TokenUse = "access", **claims
    ) -> str:
        """An access (or refresh) token as the auth service issues it; `claims` override any
        claim (exp, iss, aud, ...) for tokens the service would never issue."""
        return sign_token(self.keys, user_id, username, *roles, use=use, **claims)

    def login(self, username: str, password: str = DEMO_PASSWORD) -> dict:
        """Sign in through the auth gateway; the tokens, or an AssertionError naming the answer."""
        reply = http.post(
            self.auth_gateway.url + "/auth_api/login",
            json={"username": username, "password": password},
            timeout=30,
        )
        assert reply.status_code == 200, f"login of {username}: {reply.status_code} {reply.text}"
        return reply.json()


class WebApp:
    """The web app's process (bin/web, as foreman runs it) on a free port."""

    def __init__(self, var: Path, port: int) -> None:
        self.port, self.log = port, var / "web.log"
        self.url = f"http://127.0.0.1:{port}"
        self.env = {"WEB_PORT": str(port)}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "bin" / "web")],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.url + "/config.json", self.proc, status=200, log=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None
