"""The platform on three test hosts of this machine (issue 29): `bin/multihost` and the tests of
tests/multihost run it through `Multihost`.

The network: each host is a network namespace (`<prefix>-h1`, -h2, -h3) whose only interfaces
are loopback and eth0 with 198.18.0.1-3/24 (the benchmarking range); the eth0s are joined by a
bridge in a namespace of its own (`<prefix>-net`), which has no route; its one address,
198.18.0.254, is the one the Prometheus running in that namespace scrapes from
(harness/multihost_watch.py). No host has a default route, so nothing in them can reach past the
bridge; the machine's own namespace is not on it either (a client talks to the hosts from inside
one of them: `in_host`). Processes are
started with `nsenter --net`, never `ip netns exec`, whose private mount namespace would hide the
FUSE mounts of LiteFS from every other process.

Each host runs, inside its namespace, the same programs as ./bin/start:
- a LiteFS node of the enrollment database (`litefs mount`, API on :20212) and one of the auth
  database (bin/auth-node, which runs the auth instance on :5100, API on :20202); static leases,
  h1 the primary of both, its advertise-url the one every node names;
- `instances` enrollment instances (bin/enrollment, :5000 up), on their node's mount. On h2 and h3
  they relay every write to h1's instances (app/enrollment/relay.py), as the auth replicas relay
  theirs to the auth primary (app/auth/primary.py);
- both gateways (bin/gateway) on the host's own address, 198.18.0.N:5500 and :5400, in front of
  the host's own instances.
Backends listen on 0.0.0.0 inside the namespace (BACKEND_LISTEN_HOST), that is on loopback and
the host's address only, so that the other hosts reach the primaries.

Everything lives in `run_dir` (var/multihost for bin/multihost): each host's LiteFS mounts and
data, its own copy of the keys and the gateway secret (as each machine has its own disk), logs,
and state.json. `down` needs none of it: it ends every process in every namespace named with
the prefix, unmounts every LiteFS mount under `run_dir`, deletes the namespaces, then the
directory; so it also cleans up after a crash, and twice is the same as once.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.auth.init_db import init_keys
from app.enrollment.init_db import init_db
from bin.lib.litefs import abort_litefs_connections, litefs_mounts
from harness import multihost_watch as watch
from harness.cluster import own_checkout
from harness.enroll_cluster import write_secret
from harness.gateway import PLUGINS, clean_environ
from harness.netns import in_namespace
from harness.procs import ROOT

PREFIX = "mh"
RUN_DIR = ROOT / "var" / "multihost"
HOSTS = ("h1", "h2", "h3")
PRIMARY = "h1"
SUBNET_BITS = 24
ADDRESSES = {host: f"198.18.0.{i}" for i, host in enumerate(HOSTS, start=1)}
# The auth node each host runs: bin/auth-node's names, which pick its port variable.
AUTH_NODES = {"h1": "primary", "h2": "secondary-1", "h3": "secondary-2"}
DATABASES = ("enroll.db", "auth.db")

ENROLL_PORT = 5000  # the first instance's; the next ones follow
AUTH_PORT = 5100
LITEFS_AUTH_PORT = 20202
LITEFS_ENROLL_PORT = 20212
ENROLL_GATEWAY_PORT = 5500
AUTH_GATEWAY_PORT = 5400
ENROLL_GATEWAY_METRICS_PORT = 9091
AUTH_GATEWAY_METRICS_PORT = 9092
LITEFS_PORTS = {"enroll.db": LITEFS_ENROLL_PORT, "auth.db": LITEFS_AUTH_PORT}

READY_SECONDS = 90.0  # for everything of every host to answer, on 2 busy cores
KILL_ROUNDS = 100
CATCH_UP_SECONDS = 10.0  # promote: for the new primary to reach a live old primary's position


class MultihostError(RuntimeError):
    """Something `up` or `down` could not do, said in one sentence."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise MultihostError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def namespaces(prefix: str) -> list[str]:
    """The network namespaces named `<prefix>-...`."""
    listed = _ip("netns", "list", check=False).stdout.splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    return sorted(name for name in names if name.startswith(prefix + "-"))


def namespace_pids(name: str) -> list[int]:
    """Every process in network namespace `name` (zombies, which have left it, are not)."""
    listed = _ip("netns", "pids", name, check=False).stdout.split()
    return [int(pid) for pid in listed if pid.isdigit()]


def power_cut(
    name: str, *, fuse_under: Path | None = None, spare: Callable[[int], bool] | None = None
) -> int:
    """SIGKILL every process in namespace `name` (but those `spare` says to keep), again until
    none is left (a supervisor could have started a child between the listing and its own end);
    how many were killed. After the first round, the FUSE connections of the LiteFS mounts under
    `fuse_under` are aborted: a process blocked on a mount whose LiteFS died mid-request would
    otherwise never die (seen under load: a killed instance left in the D state for minutes)."""
    killed: set[int] = set()
    for round_ in range(KILL_ROUNDS):
        pids = [
            pid
            for pid in namespace_pids(name)
            if pid != os.getpid() and not (spare is not None and spare(pid))
        ]
        if not pids:
            return len(killed)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        if round_ == 0 and fuse_under is not None:
            time.sleep(0.05)  # LiteFS's own end first, as a machine losing its power
            abort_litefs_connections(fuse_under)
        time.sleep(0.02)
    raise MultihostError(f"processes of {name} still run after {KILL_ROUNDS} rounds of SIGKILL")


def unmount_all(under: Path) -> None:
    """Unmount every LiteFS mount at or below `under` (lazily if busy or dead)."""
    for mount in litefs_mounts(under):
        quiet = subprocess.DEVNULL
        if subprocess.run(["fusermount3", "-u", str(mount)], stdout=quiet, stderr=quiet).returncode:
            subprocess.run(["fusermount3", "-uz", str(mount)], stdout=quiet, stderr=quiet)
    left = litefs_mounts(under)
    if left:
        raise MultihostError(f"still mounted: {', '.join(map(str, left))}")


def url(host: str, port: int) -> str:
    return f"http://{ADDRESSES[host]}:{port}"


@dataclass
class Multihost:
    """Three hosts on this machine, brought `up` and taken `down`; `kill` cuts one's power."""

    run_dir: Path = RUN_DIR
    prefix: str = PREFIX
    instances: int = 2  # enrollment instances per host
    primary: str = PRIMARY  # the host holding both primaries: h1 until a `promote`
    # ENROLL_ACK of the primary's instances: "replica" (a write answered once a replica holds
    # it, docs/multihost.md says why it is the default here) or "local"
    ack: str = "replica"
    extra_env: dict[str, str] = field(default_factory=dict)  # for every auth and enrollment
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # started here

    # names and places

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def bridge_namespace(self) -> str:
        return f"{self.prefix}-net"

    def host_dir(self, host: str) -> Path:
        return self.run_dir / host

    def mount(self, host: str, database: str) -> Path:
        """The FUSE mount of `host`'s LiteFS node of `database` (enroll.db or auth.db)."""
        if database == "auth.db":
            return self.host_dir(host) / "litefs-auth" / AUTH_NODES[host] / "mnt"
        return self.host_dir(host) / "litefs-enroll" / "mnt"

    def database(self, host: str, database: str) -> Path:
        return self.mount(host, database) / database

    def enroll_urls(self, host: str, *, local: bool = False) -> list[str]:
        base = "http://127.0.0.1" if local else f"http://{ADDRESSES[host]}"
        return [f"{base}:{ENROLL_PORT + i}" for i in range(self.instances)]

    def enroll_gateway(self, host: str) -> str:
        return url(host, ENROLL_GATEWAY_PORT)

    def auth_gateway(self, host: str) -> str:
        return url(host, AUTH_GATEWAY_PORT)

    def private_jwks(self, host: str = PRIMARY) -> Path:
        return self.host_dir(host) / "var" / "auth" / "private.jwks.json"

    @contextmanager
    def in_host(self, host: str) -> Iterator[None]:
        """This thread on `host`'s network (see `in_namespace`)."""
        with in_namespace(self.namespace(host)):
            yield

    # up

    def up(self) -> float:
        """Build the network, start every host, and return the seconds until each host's
        gateways answered from every host. Refuses if hosts of this prefix exist already."""
        started = time.monotonic()
        if os.geteuid() != 0:
            raise MultihostError("network namespaces and LiteFS need root: rerun this as root")
        found = namespaces(self.prefix)
        if found:
            raise MultihostError(
                f"hosts of this prefix are up already ({', '.join(found)}): "
                "bin/multihost down first"
            )
        if litefs_mounts(self.run_dir):
            raise MultihostError(f"LiteFS is mounted under {self.run_dir}: bin/multihost down")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self._write_state()
        self._network()
        self._files()
        # The machine's Prometheus first: its start overlaps the hosts' (harness/multihost_watch).
        prometheus = watch.start(self.run_dir, self.bridge_namespace, self.scrape_targets())
        if prometheus.proc is not None:
            self.procs.append(prometheus.proc)
        for host in HOSTS:
            self._start_enroll_node(host)
        # Mounted is not yet writable: LiteFS takes the lease after it mounts, and until then
        # refuses writes as a replica would.
        primary = self.primary
        self._wait(lambda: self._is_primary(primary, "enroll.db"), f"{primary}'s enroll.db node")
        # LiteFS replicates what is written through the primary's mount: the database is made
        # there, with the demo seed (the auth primary makes auth.db the same way, bin/auth-node).
        init_db(self.database(primary, "enroll.db"))
        for host in HOSTS:
            self._start_auth_node(host)
        for host in HOSTS:
            self._wait(
                lambda h=host: self.database(h, "enroll.db").exists(),
                f"enroll.db on {host}",
            )
            self._start_enrollment(host)
        for host in HOSTS:
            for base in self.enroll_urls(host, local=True):
                self._wait_http(host, base + "/health", f"enrollment {base} on {host}")
            self._wait_http(
                host, f"http://127.0.0.1:{AUTH_PORT}/.well-known/jwks.json", f"auth on {host}"
            )
        for host in HOSTS:
            self._start_gateways(host)
        for client in HOSTS:  # each host's gateways, from every host: the bridge works
            for host in HOSTS:
                for gateway in (self.enroll_gateway(host), self.auth_gateway(host)):
                    self._wait_http(client, gateway + "/health", f"{gateway} from {client}")
        watch.wait_up(self.bridge_namespace, self.scrape_targets())
        return time.monotonic() - started

    def scrape_targets(self) -> dict[str, list[dict[str, Any]]]:
        """What the machine's Prometheus scrapes on the hosts, job by job (multihost_watch)."""
        ports = {
            "enrollment": [ENROLL_PORT + i for i in range(self.instances)],
            "auth": AUTH_PORT,
            "litefs": LITEFS_PORTS,
            "gateway": [ENROLL_GATEWAY_METRICS_PORT, AUTH_GATEWAY_METRICS_PORT],
        }
        return watch.scrape_targets(ADDRESSES, ports)

    def _write_state(self) -> None:
        state = {
            "prefix": self.prefix,
            "instances": self.instances,
            "primary": self.primary,
            "ack": self.ack,
            "hosts": ADDRESSES,
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    def _network(self) -> None:
        net = self.bridge_namespace
        _ip("netns", "add", net)
        _ip("-n", net, "link", "add", "br0", "type", "bridge")
        _ip("-n", net, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.namespace(host)
            _ip("netns", "add", ns)
            _sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            _ip("-n", net, "link", "add", host, "type", "veth", "peer", "name", "eth0")
            _ip("-n", net, "link", "set", "eth0", "netns", ns)
            _ip("-n", net, "link", "set", host, "master", "br0")
            _ip("-n", net, "link", "set", host, "up")
            _ip("-n", ns, "addr", "add", f"{ADDRESSES[host]}/{SUBNET_BITS}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
        _sysctl(net, "net.ipv6.conf.all.disable_ipv6=1")
        # The address the machine's Prometheus scrapes from, in this namespace (multihost_watch).
        _ip("-n", net, "addr", "add", f"{watch.MONITOR_ADDRESS}/{SUBNET_BITS}", "dev", "br0")
        _ip("-n", net, "link", "set", "lo", "up")

    def _files(self) -> None:
        """Each host's var/: the same signing key and gateway secret (one installation), a copy
        on each host's own disk; its etc/ (the LiteFS configs) and a checkout for its gateways."""
        keys = self.run_dir / "keys"
        init_keys(keys / "private.jwks.json", keys / "jwks.json", "multihost-key")
        secret = write_secret(keys / "gateway.secret")
        for host in HOSTS:
            var = self.host_dir(host) / "var"
            (var / "auth").mkdir(parents=True)
            (var / "gateway").mkdir()
            (var / "enroll").mkdir()
            shutil.copy2(keys / "private.jwks.json", var / "auth" / "private.jwks.json")
            shutil.copy2(keys / "jwks.json", var / "gateway" / "jwks.json")
            shutil.copy2(secret, var / "gateway.secret")
            self._write_configs(host)
            own_checkout(self.host_dir(host))

    def _write_configs(self, host: str) -> None:
        """`host`'s LiteFS configs, naming the current primary (`self.primary`)."""
        etc = self.host_dir(host) / "etc" / "litefs"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / f"{AUTH_NODES[host]}.yml").write_text(self._auth_config(host))
        (etc / "enroll.yml").write_text(self._enroll_config(host))

    def _lease(self, host: str, port: int) -> str:
        return (
            "lease:\n"
            "  type: static\n"
            f"  candidate: {'true' if host == self.primary else 'false'}\n"
            f"  hostname: {self.primary}\n"
            f'  advertise-url: "{url(self.primary, port)}"\n'
        )

    def _auth_config(self, host: str) -> str:
        """etc/litefs/NODE.yml of one host: as the one-host configs, on the host's address."""
        node = AUTH_NODES[host]
        base = self.host_dir(host) / "litefs-auth" / node
        serve = f"bin/auth-node serve --database {base / 'mnt' / 'auth.db'} --port {AUTH_PORT}"
        if host != self.primary:
            serve += f" --primary-url {url(self.primary, AUTH_PORT)}"
        return (
            f"# The auth database's LiteFS node on {host} (harness/multihost.py).\n"
            f'fuse:\n  dir: "{base / "mnt"}"\n'
            f'data:\n  dir: "{base / "data"}"\n'
            f'http:\n  addr: "{ADDRESSES[host]}:{LITEFS_AUTH_PORT}"\n'
            + self._lease(host, LITEFS_AUTH_PORT)
            + f'exec:\n  - cmd: "{serve}"\n'
        )

    def _enroll_config(self, host: str) -> str:
        """The enrollment database's LiteFS node: no exec, the instances start beside it."""
        base = self.host_dir(host) / "litefs-enroll"
        return (
            f"# The enrollment database's LiteFS node on {host} (harness/multihost.py).\n"
            f'fuse:\n  dir: "{base / "mnt"}"\n'
            f'data:\n  dir: "{base / "data"}"\n'
            f'http:\n  addr: "{ADDRESSES[host]}:{LITEFS_ENROLL_PORT}"\n'
            + self._lease(host, LITEFS_ENROLL_PORT)
        )

    def _env(self, host: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in clean_environ().items()
            if not k.startswith(("AUTH_", "LITEFS_", "ENROLL_", "BACKEND_"))
        }
        tools = [str(ROOT / ".tools" / "bin"), str(ROOT / ".venv" / "bin")]
        env["PATH"] = os.pathsep.join([*tools, env.get("PATH", "")])
        return env | {"PYTHONUNBUFFERED": "1", "BACKEND_LISTEN_HOST": "0.0.0.0"}

    def _spawn(self, host: str, name: str, command: list[str], env: dict[str, str]) -> None:
        logs = self.host_dir(host) / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as out:
            self.procs.append(
                subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{self.namespace(host)}", "--", *command],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # outlives bin/multihost up; `down` ends it
                )
            )

    def _start_enroll_node(self, host: str) -> None:
        (self.host_dir(host) / "litefs-enroll").mkdir(exist_ok=True)
        config = self.host_dir(host) / "etc" / "litefs" / "enroll.yml"
        command = [str(ROOT / ".tools" / "bin" / "litefs"), "mount", "-config", str(config)]
        self._spawn(host, "litefs-enroll", command, self._env(host))

    def _start_auth_node(self, host: str) -> None:
        var = self.host_dir(host) / "var"
        node = AUTH_NODES[host]
        port_var = f"AUTH_{node.upper().replace('-', '_')}_PORT"
        env = self._env(host) | {
            "LITEFS_DIR": str(self.host_dir(host) / "litefs-auth"),
            "LITEFS_CONFIG_DIR": str(self.host_dir(host) / "etc" / "litefs"),
            port_var: str(AUTH_PORT),
            "AUTH_PRIVATE_JWKS": str(var / "auth" / "private.jwks.json"),
            "AUTH_GATEWAY_SECRET_FILE": str(var / "gateway.secret"),
            "AUTH_TRUSTED_PROXIES": "127.0.0.1",  # the host's own auth gateway
            "AUTH_ENROLL_URLS": ",".join(self.enroll_urls(host, local=True)),
            "AUTH_MAIL_DOMAIN": "example.edu",
            **self.extra_env,
        }
        self._spawn(host, "auth-node", [sys.executable, str(ROOT / "bin" / "auth-node"), node], env)

    def _start_enrollment(self, host: str) -> None:
        var = self.host_dir(host) / "var"
        env = self._env(host) | {
            "ENROLL_DATABASE": str(self.database(host, "enroll.db")),
            "ENROLL_GATEWAY_SECRET_FILE": str(var / "gateway.secret"),
            "ENROLL_WRITER_LOCK_FILE": str(var / "enroll" / "enroll.db.writer-lock"),
            "ENROLL_AUTH_URLS": f"http://127.0.0.1:{AUTH_PORT}",
            # A LiteFS commit costs 1.6 ms whatever it holds: one a write turn, not one a write
            # (docs/multihost.md). On every host: after a promote, any of them is the primary.
            "ENROLL_ONE_TRANSACTION_A_TURN": "1",
            **self.extra_env,
        }
        if host != self.primary:
            env["ENROLL_PRIMARY_URLS"] = ",".join(self.enroll_urls(self.primary))
            acked = str(var / "enroll" / "primary-acked-{i}")
        else:
            replicas = [url(other, LITEFS_ENROLL_PORT) for other in HOSTS if other != host]
            env["ENROLL_ACK"] = self.ack
            env["ENROLL_ACK_REPLICAS"] = ",".join(replicas)
        for i in range(self.instances):
            port = ENROLL_PORT + i
            instance = env | {"PORT": str(port), "ENROLL_INSTANCE": f"{host}-enrollment-{i}"}
            if host != self.primary:  # one file per instance: no two writers of one file
                instance["ENROLL_ACKED_POSITION_FILE"] = acked.format(i=i)
            command = [sys.executable, str(ROOT / "bin" / "enrollment")]
            self._spawn(host, f"enrollment-{i}", command, instance)

    def _start_gateways(self, host: str) -> None:
        checkout = self.host_dir(host) / "checkout"
        var = self.host_dir(host) / "var"
        common = self._env(host) | {
            "VAR_DIR": str(var),
            "GATEWAY_LISTEN_IP": ADDRESSES[host],
            "GATEWAY_METRICS_IP": ADDRESSES[host],  # where the machine's Prometheus scrapes
            "GATEWAY_JWKS_FILE": str(var / "gateway" / "jwks.json"),
            "GATEWAY_PLUGIN_DIR": str(PLUGINS),
        }
        enroll = common | {
            "GATEWAY_ENROLL_PORT": str(ENROLL_GATEWAY_PORT),
            "GATEWAY_ENROLL_BACKENDS": ",".join(self.enroll_urls(host, local=True)),
            "GATEWAY_METRICS_PORT": str(ENROLL_GATEWAY_METRICS_PORT),
        }
        auth = common | {
            "GATEWAY_AUTH_PORT": str(AUTH_GATEWAY_PORT),
            "GATEWAY_AUTH_PRIMARY": url(self.primary, AUTH_PORT),
            # Every auth route goes to the "replicas" list: here, the host's own auth instance
            # (on h1 the primary itself), which relays what only the primary can do.
            "GATEWAY_AUTH_REPLICAS": f"http://127.0.0.1:{AUTH_PORT}",
            "GATEWAY_METRICS_PORT": str(AUTH_GATEWAY_METRICS_PORT),
        }
        gateway = str(checkout / "bin" / "gateway")
        self._spawn(host, "enroll-gateway", [gateway, "enroll"], enroll)
        self._spawn(host, "auth-gateway", [gateway, "auth"], auth)

    def _is_primary(self, host: str, database: str) -> bool:
        """Whether `host`'s LiteFS node of `database` is mounted and holds the lease."""
        mount = self.mount(host, database)
        if mount not in litefs_mounts(mount.parent):
            return False
        try:
            with self.in_host(host):
                info = httpx.get(url(host, LITEFS_PORTS[database]) + "/info", timeout=1.0)
            return bool(info.json().get("isPrimary"))
        except (httpx.HTTPError, ValueError):
            return False

    def _wait(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not predicate():
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise MultihostError(f"{what}: not ready within {READY_SECONDS:.0f} s")
            time.sleep(0.05)

    def _wait_http(self, host: str, address: str, what: str) -> None:
        def answers() -> bool:
            try:
                with self.in_host(host):
                    return httpx.get(address, timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(answers, what)

    def _check_alive(self, what: str) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                command = " ".join(str(part) for part in proc.args[3:])  # type: ignore[index]
                raise MultihostError(
                    f"waiting for {what}: `{command}` exited with {proc.returncode}"
                    f" (logs under {self.run_dir}/h*/logs)"
                )

    # restart, promote

    def restart(self, host: str) -> float:
        """Start `host` again after a `kill` (or cut its power first if it runs), with configs
        written afresh from the state: an old primary comes back as a replica of the current
        one, whatever its own disk said. The seconds until its gateways answered."""
        started = time.monotonic()
        self._check_host(host)
        if namespace_pids(self.namespace(host)):
            self.kill(host)
        self._start_backends(host)
        self._wait_backends(host)
        self._start_gateways(host)
        for gateway in (self.enroll_gateway(host), self.auth_gateway(host)):
            self._wait_http(host, gateway + "/health", f"{gateway} on {host}")
        return time.monotonic() - started

    def promote(self, host: str, *, force: bool = False) -> dict[str, Any]:
        """Make `host` the primary of both databases, the old primary dead or alive (a live one
        is stopped, then started again as a replica; docs/multihost.md, "promote"). Refuses,
        unless `force`, a `host` whose copy of a database is behind what must be kept: a live old
        primary's last transaction, or else the highest primary position a surviving host's
        instance passed on to a client and every other surviving replica's position. What was
        found and done, as a dict."""
        started = time.monotonic()
        self._check_host(host)
        old = self.primary
        if host == old:
            raise MultihostError(f"{host} is the primary already")
        if not namespace_pids(self.namespace(host)):
            raise MultihostError(f"{host} is down: `bin/multihost restart {host}` first")
        old_alive = bool(namespace_pids(self.namespace(old)))
        required = self._stop_primary(old, host) if old_alive else self._must_hold(host, old)
        held = {db: self._txid(host, db) for db in DATABASES}
        behind = {db: (held[db], need) for db, need in required.items() if (held[db] or 0) < need}
        if behind and not force:
            if old_alive:  # its instances were stopped above: it serves on as the primary
                self.restart(old)
            said = "; ".join(f"{db} at {have} of {need}" for db, (have, need) in behind.items())
            raise MultihostError(
                f"{host} is behind what the old primary {old} acknowledged ({said}): promote "
                "the host that is ahead (bin/multihost status), or --force to lose the rest"
            )
        if old_alive:
            self.kill(old)
        survivors = [h for h in HOSTS if h != old and namespace_pids(self.namespace(h))]
        for other in survivors:
            self._stop_backends(other)
        self.primary = host
        self._write_state()
        for other in HOSTS:
            self._write_configs(other)  # the old primary's too: it comes back as a replica
            for acked in (self.host_dir(other) / "var" / "enroll").glob("primary-acked-*"):
                acked.unlink()  # positions of the old primary's history
        # The new primary alone first: writes resume as soon as its instances answer (through
        # its own gateway), rather than once every host has started again on 2 busy cores.
        self._start_backends(host)
        self._wait_backends(host)
        writable = time.monotonic() - started
        replicas = [h for h in survivors if h != host]
        for other in replicas:
            self._start_backends(other)
        for other in replicas:
            self._wait_backends(other)
        if old_alive:  # a planned switchover: the old primary serves on, as a replica
            self.restart(old)
        return {
            "primary": host,
            "old_primary": old,
            "old_primary_was": "alive" if old_alive else "dead",
            "required_txid": required,
            "held_txid": held,
            "forced": bool(behind),
            "writable_after_seconds": round(writable, 2),
            "seconds": round(time.monotonic() - started, 2),
        }

    def _check_host(self, host: str) -> None:
        if host not in HOSTS:
            raise MultihostError(f"no host {host!r}: the hosts are {', '.join(HOSTS)}")

    def _txid(self, host: str, database: str) -> int | None:
        """The TXID `host`'s node of `database` holds (its mount's `-pos`), None if unreadable."""
        with suppress(OSError, ValueError):
            pos = (self.mount(host, database) / f"{database}-pos").read_text()
            return int(pos.partition("/")[0], 16)
        return None

    def _must_hold(self, host: str, dead: str) -> dict[str, int]:
        """With the old primary `dead`: per database, the highest of the positions the other
        surviving replicas hold and (enroll.db) of those the old primary put on answers that the
        surviving hosts' instances passed on (their `primary-acked-*` files)."""
        required = dict.fromkeys(DATABASES, 0)
        for other in HOSTS:
            if other in (host, dead) or not namespace_pids(self.namespace(other)):
                continue
            for db in DATABASES:
                required[db] = max(required[db], self._txid(other, db) or 0)
        for other in HOSTS:
            if other == dead:
                continue
            for acked in (self.host_dir(other) / "var" / "enroll").glob("primary-acked-*"):
                with suppress(OSError, ValueError):
                    required["enroll.db"] = max(required["enroll.db"], int(acked.read_text()))
        return required

    def _stop_primary(self, old: str, host: str) -> dict[str, int]:
        """A live old primary: its enrollment instances stopped and its auth instance frozen
        (no more writes to either database), then its position of each database once `host`
        has held it for a moment (or after CATCH_UP_SECONDS), which `host` must hold.

        The auth instance is frozen (SIGSTOP), not killed: LiteFS runs it (its `exec`) and ends
        with it, and this node's LiteFS must keep serving `host` its last transactions. Left
        running, it could answer a registration between the last check here and the kill that
        follows, a registration the new primary would never hold. Frozen, what it has not
        committed it never answers; `kill` then ends it with the rest of the host."""
        for pid in namespace_pids(self.namespace(old)):
            cmdline = _cmdline(pid)
            stop = None
            if any(part in cmdline for part in ("bin/enrollment", "app.enrollment")):
                stop = signal.SIGKILL
            elif "app.auth" in cmdline:
                stop = signal.SIGSTOP
            if stop is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, stop)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        steady = 0
        while True:
            final = {db: self._txid(old, db) or 0 for db in DATABASES}
            caught_up = all((self._txid(host, db) or 0) >= final[db] for db in DATABASES)
            steady = steady + 1 if caught_up else 0
            if steady >= 3 or time.monotonic() > deadline:
                return final
            time.sleep(0.1)

    def _stop_backends(self, host: str) -> None:
        """End every process of `host` but its gateways (its LiteFS nodes, auth and enrollment
        instances), and unmount its LiteFS mounts."""
        power_cut(
            self.namespace(host),
            fuse_under=self.host_dir(host),
            spare=lambda pid: any(part in _cmdline(pid) for part in ("krakend", "bin/gateway")),
        )
        self._reap()
        unmount_all(self.host_dir(host))

    def _start_backends(self, host: str) -> None:
        """`host`'s LiteFS nodes, auth and enrollment instances, with configs naming the current
        primary; its LiteFS data (the databases) kept from before."""
        self._write_configs(host)
        self._start_enroll_node(host)
        self._start_auth_node(host)
        self._start_enrollment_when_mounted(host)

    def _start_enrollment_when_mounted(self, host: str) -> None:
        if host == self.primary:
            self._wait(lambda: self._is_primary(host, "enroll.db"), f"{host}'s enroll.db node")
        self._wait(lambda: self.database(host, "enroll.db").exists(), f"enroll.db on {host}")
        self._start_enrollment(host)

    def _wait_backends(self, host: str) -> None:
        for base in self.enroll_urls(host, local=True):
            self._wait_http(host, base + "/health", f"enrollment {base} on {host}")
        self._wait_http(
            host, f"http://127.0.0.1:{AUTH_PORT}/.well-known/jwks.json", f"auth on {host}"
        )

    # kill, down

    def kill(self, host: str) -> int:
        """A power cut of `host`: every one of its processes SIGKILLed at once; its LiteFS
        mounts, dead, are unmounted (its disk, the data directories, stays). How many died."""
        self._check_host(host)
        killed = power_cut(self.namespace(host), fuse_under=self.host_dir(host))
        self._reap()
        unmount_all(self.host_dir(host))
        return killed

    def cut_off(self, host: str, *, cut: bool = True) -> None:
        """Unplug `host` from the bridge (its processes run on, reaching nothing but itself;
        connections to it stall), or plug it back in (`cut=False`)."""
        self._check_host(host)
        _ip("-n", self.bridge_namespace, "link", "set", host, "down" if cut else "up")

    def down(self) -> None:
        """Remove everything `up` made, whatever state it is in (see the module's docstring)."""
        found = namespaces(self.prefix)
        for ns in found:  # the hosts, and the bridge's namespace with the Prometheus
            power_cut(ns, fuse_under=self.run_dir)
        self._reap()
        unmount_all(self.run_dir)
        for ns in found:
            _ip("netns", "del", ns, check=False)
        left = namespaces(self.prefix)
        if left:
            raise MultihostError(f"could not delete the namespaces {', '.join(left)}")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)

    def _reap(self) -> None:
        """Collect the processes this object started that have ended (no zombies left)."""
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0 if proc.poll() is None else None)
        self.procs = [proc for proc in self.procs if proc.returncode is None]

    # status

    def status(self) -> dict[str, Any]:
        """The hosts, their addresses and processes, which node holds each primary, and each
        node's replication position (TXID, from LiteFS's `-pos` file of its mount)."""
        found = namespaces(self.prefix)
        bridged = self.bridge_namespace in found
        hosts: dict[str, Any] = {}
        primaries: dict[str, list[str]] = {db: [] for db in DATABASES}
        for host in HOSTS:
            ns = self.namespace(host)
            entry: dict[str, Any] = {
                "namespace": ns,
                "address": ADDRESSES[host],
                "up": ns in found,
                "processes": len(namespace_pids(ns)) if ns in found else 0,
                "enroll_gateway": self.enroll_gateway(host),
                "auth_gateway": self.auth_gateway(host),
                "nodes": {},
            }
            for database, port in LITEFS_PORTS.items():
                node = self._node_status(host, database, port) if ns in found else None
                entry["nodes"][database] = node
                if node is not None and node.get("primary"):
                    primaries[database].append(host)
            if ns in found:
                entry["gateways_healthy"] = self._gateways_healthy(host)
            hosts[host] = entry
        for database in DATABASES:
            txids = [
                node["txid"]
                for entry in hosts.values()
                if (node := entry["nodes"][database]) is not None and node.get("primary")
            ]
            for entry in hosts.values():
                node = entry["nodes"][database]
                if txids and node is not None and node.get("txid") is not None:
                    node["behind_primary"] = txids[0] - node["txid"]
        return {
            "prefix": self.prefix,
            "run_dir": str(self.run_dir),
            "bridge": self.bridge_namespace if bridged else None,
            "hosts": hosts,
            "primary": {db: holders[0] if len(holders) == 1 else holders or None
                        for db, holders in primaries.items()},
            # What the configs name (state.json): LiteFS's answer above differs while a host
            # is down or a promote is under way.
            "configured": {"primary": self.primary, "ack": self.ack},
            "prometheus": watch.status(self.bridge_namespace) if bridged else None,
        }  # fmt: skip

    def _node_status(self, host: str, database: str, port: int) -> dict[str, Any]:
        node: dict[str, Any] = {"litefs_api": url(host, port)}
        try:
            with self.in_host(host):
                info = httpx.get(url(host, port) + "/info", timeout=1.0).json()
            node["primary"] = bool(info.get("isPrimary"))
            node["candidate"] = bool(info.get("candidate"))
            node["primary_hostname"] = info.get("primary", {}).get("hostname") or None
        except (httpx.HTTPError, ValueError) as exc:
            node["error"] = f"LiteFS API: {exc.__class__.__name__}"
        pos = self.mount(host, database) / f"{database}-pos"
        try:
            position = pos.read_text().strip()
            node["position"] = position
            node["txid"] = int(position.partition("/")[0], 16)
        except (OSError, ValueError) as exc:
            node["position"] = None
            node["txid"] = None
            node.setdefault("error", f"{pos.name}: {exc.__class__.__name__}")
        return node

    def _gateways_healthy(self, host: str) -> dict[str, bool]:
        healthy = {}
        with self.in_host(host):
            for name, base in (
                ("enroll", self.enroll_gateway(host)),
                ("auth", self.auth_gateway(host)),
            ):
                try:
                    healthy[name] = httpx.get(base + "/health", timeout=1.0).status_code == 200
                except httpx.HTTPError:
                    healthy[name] = False
        return healthy

    # for tests

    def caught_up(self, database: str) -> bool:
        """Whether every live node of `database` holds the primary's last transaction."""
        positions = set()
        for host in HOSTS:
            with suppress(OSError):
                positions.add((self.mount(host, database) / f"{database}-pos").read_text())
        return len(positions) == 1

    @classmethod
    def from_state(cls, run_dir: Path = RUN_DIR, prefix: str = PREFIX) -> "Multihost":
        """The hosts a `bin/multihost up` started, from its state.json (defaults without it)."""
        state_file = run_dir / "state.json"
        instances, primary, ack = 2, PRIMARY, "replica"
        if state_file.exists():
            with suppress(ValueError, OSError):
                state = json.loads(state_file.read_text())
                prefix = state.get("prefix", prefix)
                instances = int(state.get("instances", instances))
                primary = state.get("primary", primary)
                ack = state.get("ack", ack)
        return cls(run_dir=run_dir, prefix=prefix, instances=instances, primary=primary, ack=ack)


def _cmdline(pid: int) -> str:
    """The command line of process `pid`, its arguments joined by spaces ("" once it ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _sysctl(namespace: str, *settings: str) -> None:
    """Set sysctls of `namespace`'s network stack (`ip netns exec` remounts /proc/sys for it)."""
    command = ["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", *settings]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise MultihostError(f"sysctl in {namespace}: {done.stderr.strip()}")
