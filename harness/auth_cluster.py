"""A real auth cluster: the three LiteFS nodes of etc/litefs/*.yml, each started with
`bin/auth-node NODE` exactly as the Procfile does, each running its own auth instance, on free
loopback ports in a directory of the caller's (never the ports or var/ of a running cluster).
Used by the end-to-end tests and the benchmarks."""

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.auth.init_db import init_keys
from bin.lib.litefs import litefs_mounts
from harness.procs import ROOT, free_port, log_tail, wait_http

LITEFS = ROOT / ".tools" / "bin" / "litefs"
NODES = ("primary", "secondary-1", "secondary-2")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class AuthNode:
    name: str
    auth_port: int
    litefs_port: int
    litefs_dir: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.auth_port}"

    @property
    def litefs_url(self) -> str:
        return f"http://127.0.0.1:{self.litefs_port}"

    @property
    def mount(self) -> Path:
        return self.litefs_dir / self.name / "mnt"

    @property
    def database(self) -> Path:
        return self.mount / "auth.db"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines)


@dataclass
class AuthCluster:
    """Start, stop and kill the nodes; read what each node's own database holds."""

    dir: Path
    nodes: dict[str, AuthNode] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # Every account registered through `register`, to check later that none was lost.
    registered: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, tmp: Path, extra_env: dict[str, str] | None = None) -> "AuthCluster":
        """Three nodes under `tmp`, not started; `extra_env` is added to every node's
        environment (AUTH_* settings, say)."""
        private_jwks = tmp / "auth" / "private.jwks.json"
        init_keys(private_jwks, tmp / "gateway" / "jwks.json", "e2e-key")
        ports = [free_port() for _ in range(2 * len(NODES))]  # never the same twice
        cluster = cls(dir=tmp)
        for i, name in enumerate(NODES):
            cluster.nodes[name] = AuthNode(
                name, ports[2 * i], ports[2 * i + 1], tmp / "litefs", tmp / f"{name}.log"
            )
        # A developer's AUTH_* or LITEFS_* variables must not leak into the nodes.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "LITEFS_"))}
        env |= {
            "LITEFS_DIR": str(tmp / "litefs"),
            "AUTH_PRIVATE_JWKS": str(private_jwks),
            "PYTHONUNBUFFERED": "1",
        }
        for node in cluster.nodes.values():
            var = node.name.upper().replace("-", "_")  # secondary-1 -> SECONDARY_1
            env[f"AUTH_{var}_PORT"] = str(node.auth_port)
            env[f"LITEFS_{var}_PORT"] = str(node.litefs_port)
        cluster.env = env | (extra_env or {})
        return cluster

    @property
    def primary(self) -> AuthNode:
        return self.nodes["primary"]

    @property
    def replicas(self) -> list[AuthNode]:
        return [self.nodes["secondary-1"], self.nodes["secondary-2"]]

    @property
    def throttle_database(self) -> Path:
        """The abuse counts all nodes share (app/auth/settings.py `throttle_path`)."""
        given = self.env.get("AUTH_THROTTLE_DATABASE")
        return Path(given) if given else Path(self.env["AUTH_PRIVATE_JWKS"]).parent / "throttle.db"

    def replicas_caught_up(self) -> bool:
        """Whether each replica holds the primary's last transaction: LiteFS's `auth.db-pos`
        (transaction id and checksum) is the same on every node."""
        positions = {
            (node.mount / "auth.db-pos").read_text() for node in (self.primary, *self.replicas)
        }
        return len(positions) == 1

    def start(self, *names: str) -> float:
        """Start the named nodes (default: all) at once; return the seconds until every one's
        auth instance answers."""
        started = time.monotonic()
        nodes = [self.nodes[n] for n in (names or NODES)]
        for node in nodes:
            assert not node.running, f"{node.name} is already running"
            with node.log.open("ab") as out:  # the child keeps its own copy of the descriptor
                node.proc = subprocess.Popen(
                    [str(ROOT / "bin" / "auth-node"), node.name],
                    cwd=ROOT,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # so kill() can take the whole node down
                )
        for node in nodes:
            self._wait_ready(node)
        return time.monotonic() - started

    def stop(self, name: str) -> None:
        """Stop a node as foreman does (SIGTERM) and check that it left nothing mounted."""
        node = self.nodes[name]
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill(name)
            raise AssertionError(f"{name} did not stop on SIGTERM\n{node.log_tail()}") from None
        assert not mounted(node.mount), f"{name} stopped but left {node.mount} mounted"

    def kill(self, name: str) -> None:
        """kill -9 the whole node: bin/auth-node, LiteFS and the auth instance LiteFS runs. The
        FUSE mount is left behind dead, as after a crash."""
        node = self.nodes[name]
        assert node.proc is not None
        wrapper = node.proc.pid
        children = _children(wrapper)  # LiteFS, in a session of its own with its auth instance
        _killpg(wrapper)
        for pid in children:
            _killpg(pid)
        node.proc.wait(timeout=STOP_TIMEOUT)

    def serving_pid(self, name: str) -> int | None:
        """The pid of the auth instance (uvicorn) that LiteFS runs on node `name`, if any."""
        node = self.nodes[name]
        assert node.proc is not None
        try:
            descendants = psutil.Process(node.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        for process in descendants:
            with suppress(psutil.Error):  # one that ends while we look is not serving
                if any("uvicorn" in part for part in process.cmdline()):
                    return process.pid
        return None

    def close(self) -> None:
        """Stop every node still running, then unmount whatever is left: even after a failure,
        nothing stays mounted under the temporary directory."""
        for name, node in self.nodes.items():
            if node.running:
                with suppress(AssertionError):  # already reported by the failing test
                    self.stop(name)
        for mount in litefs_mounts(self.dir):
            subprocess.run(["fusermount3", "-u", mount], check=False)
            if mounted(mount):
                subprocess.run(["fusermount3", "-uz", mount], check=False)

    def _wait_ready(self, node: AuthNode) -> None:
        wait_http(
            node.url + "/.well-known/jwks.json", node.proc, READY_TIMEOUT, status=200, log=node.log
        )


def _children(pid: int) -> list[int]:
    """The children of `pid`, whichever of its threads started them (Go's LiteFS starts its
    subprocess from any); none if `pid` has just ended."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def _killpg(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def mounted(path: Path) -> bool:
    # No resolve(): stat on a dead FUSE mount fails ("Transport endpoint is not connected").
    return path in litefs_mounts(path.parent)


def has_user(node: AuthNode, username: str) -> bool:
    """Whether this node's own copy of the database holds `username` (read through its mount)."""
    conn = sqlite3.connect(f"file:{node.database}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone()
        return row is not None
    finally:
        conn.close()


def user_count(node: AuthNode) -> int:
    conn = sqlite3.connect(f"file:{node.database}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM users").fetchone()[0]
    finally:
        conn.close()


@contextmanager
def lagging(node: AuthNode) -> Iterator[None]:
    """Hold this replica back: while a read transaction is open on its database, LiteFS cannot
    apply the primary's next transactions there (it waits for the lock), so the replica lags
    behind for as long as the block lasts, as a slow or distant replica would."""
    conn = sqlite3.connect(f"file:{node.database}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM users").fetchone()
        yield
    finally:
        conn.close()


def wait_for(predicate, timeout: float, interval: float = 0.002) -> float | None:
    """Seconds until `predicate()` held, or None if it did not within `timeout`."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


# Abuse limits (app/auth/throttle.py) out of reach: tests and benchmarks register and fail
# sign-ins far more often than the defaults allow one address, and all of them come from 127.0.0.1.
ROOMY_LIMITS_ENV = {
    "AUTH_LOGIN_FAILURES_PER_USERNAME": "1000000",
    "AUTH_LOGIN_FAILURES_PER_ADDRESS": "1000000",
    "AUTH_REGISTRATIONS_PER_ADDRESS": "1000000",
}

# Access tokens that expire within a test: the modules that watch a session outlive its access
# token (tests/e2e/test_accounts.py, test_web_app.py) share one cluster with these settings.
SHORT_ACCESS_TTL = 8
SHORT_TOKENS_ENV = ROOMY_LIMITS_ENV | {"AUTH_ACCESS_TTL_SECONDS": str(SHORT_ACCESS_TTL)}
