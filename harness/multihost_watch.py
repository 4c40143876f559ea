"""The machine's Prometheus, watching the three test hosts of harness/multihost.py from their
network, as a monitoring server on their LAN would.

It runs in the bridge's namespace (`<prefix>-net`), where the bridge gets one more address,
198.18.0.254/24, and listens there on 127.0.0.1:9190: so two sets of hosts (bin/multihost's and
a test's, each its own prefix) each have their own, and nothing in the machine's own namespace
changes. It scrapes with the committed config and rules (etc/prometheus/), each job's targets
being the hosts' processes on their addresses, labelled `host`: every enrollment instance, the
auth instance, both LiteFS nodes (labelled `database`) and both gateways of each host. Its data
lives in the run directory; `Multihost.down` ends it with everything else in the namespaces.
Reach it with `nsenter --net=/run/netns/mh-net curl http://127.0.0.1:9190/api/v1/targets`.
"""

import time
from pathlib import Path
from typing import Any

import httpx

from harness import http
from harness.netns import in_namespace
from harness.prometheus import Prometheus

MONITOR_ADDRESS = "198.18.0.254"
PROMETHEUS_PORT = 9190
FIRST_SCRAPE_SECONDS = 15.0


def scrape_targets(hosts: dict[str, str], ports: dict[str, Any]) -> dict[str, list[dict]]:
    """Each job's static_configs for `hosts` (name -> address). `ports`: "enrollment" (a list,
    one port per instance), "auth", "litefs" ({database: port}) and "gateway" (a list)."""

    def on(address: str, port: int) -> str:
        return f"{address}:{port}"

    return {
        "enrollment": [
            {"targets": [on(a, p) for p in ports["enrollment"]], "labels": {"host": h}}
            for h, a in hosts.items()
        ],
        "auth": [
            {"targets": [on(a, ports["auth"])], "labels": {"host": h}} for h, a in hosts.items()
        ],
        "litefs": [
            {"targets": [on(a, port)], "labels": {"host": h, "database": database}}
            for h, a in hosts.items()
            for database, port in ports["litefs"].items()
        ],
        "gateway": [
            {"targets": [on(a, p) for p in ports["gateway"]], "labels": {"host": h}}
            for h, a in hosts.items()
        ],
    }


def start(run_dir: Path, bridge_namespace: str, targets: dict[str, list[dict]]) -> Prometheus:
    """Prometheus in `bridge_namespace` on 127.0.0.1:PROMETHEUS_PORT, in a session of its own
    (it outlives `bin/multihost up`), ready when this returns. Started before the hosts, so
    that its start overlaps theirs (it took half of `up` after them): `wait_up` then."""
    server = Prometheus(run_dir, dict(targets), port=PROMETHEUS_PORT, every_job=False)
    with in_namespace(bridge_namespace):  # the process, and the wait for it
        server.start(detached=True)
    return server


def wait_up(bridge_namespace: str, targets: dict[str, list[dict]]) -> bool:
    """Wait until Prometheus has seen every target up (at most FIRST_SCRAPE_SECONDS), so that
    `status` says at once what is up; whether it did."""
    expected = 1 + sum(len(group["targets"]) for job in targets.values() for group in job)
    deadline = time.monotonic() + FIRST_SCRAPE_SECONDS
    while time.monotonic() < deadline:
        found = status(bridge_namespace)
        if found.get("targets") == found.get("targets_up") == expected:
            return True
        time.sleep(0.2)
    return False


def status(bridge_namespace: str) -> dict[str, Any]:
    """Whether the Prometheus answers, and which of its targets are up."""
    found: dict[str, Any] = {
        "namespace": bridge_namespace,
        "url": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        "scrapes_from": MONITOR_ADDRESS,
    }
    try:
        with in_namespace(bridge_namespace):
            reply = http.get(found["url"] + "/api/v1/targets", timeout=2.0)
        targets = reply.json()["data"]["activeTargets"]
    except (OSError, httpx.HTTPError, ValueError, KeyError) as exc:
        return found | {"running": False, "error": exc.__class__.__name__}
    down = [t for t in targets if t.get("health") != "up"]
    return found | {
        "running": True,
        "targets": len(targets),
        "targets_up": len(targets) - len(down),
        "down": sorted(f"{t['labels'].get('job')} {t['labels'].get('instance')}" for t in down),
    }


def query(bridge_namespace: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector of `promql` now, from the Prometheus of `bridge_namespace`."""
    with in_namespace(bridge_namespace):
        reply = http.get(
            f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": promql}, timeout=10
        )
    reply.raise_for_status()
    result: list[dict[str, Any]] = reply.json()["data"]["result"]
    return result
