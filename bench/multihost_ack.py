"""What "acknowledged means kept" costs (issue 29): the same enroll rush through the three hosts'
gateways (bin/multihost) with ENROLL_ACK=local and with ENROLL_ACK=replica, in one run.

  sudo .venv/bin/python -m bench.multihost_ack [--seconds 8] [--clients 24] [--rounds 1]

Each mode gets its own three hosts (up, the rush, down). C clients (closed loop: each sends its
next enroll when the last is answered), spread evenly over the three gateways, from h3's
network, each enroll a new student into one section with room for all: every answer should be
201. Tokens are signed before the clock starts. Prints, per mode, enrolls answered per second
and their latency, and the figures of the two modes side by side."""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.auth.tokens import KeyRing
from harness.cluster import sign_token
from harness.loadclient import Connection
from harness.multihost import HOSTS, Multihost

API = "/enroll_api"


async def rush(
    hosts: Multihost, section_id: int, tokens: list[str], clients: int, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """Latencies of the enrolls answered 201, and the count of every status (0: no answer)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    students = iter(enumerate(tokens, start=50000))
    deadline = time.monotonic() + seconds

    async def client(host: str) -> None:
        connection = Connection(hosts.enroll_gateway(host))
        while time.monotonic() < deadline:
            student, token = next(students)
            path = f"{API}/users/{student}/enrollments"
            headers = {"Authorization": f"Bearer {token}"}
            started = time.monotonic()
            try:
                reply = await connection.request("POST", path, headers, {"section_id": section_id})
                status = reply.status
            except (OSError, asyncio.IncompleteReadError):
                await connection.close()
                status = 0
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                latencies.append(time.monotonic() - started)
        await connection.close()

    await asyncio.gather(*(client(HOSTS[i % 3]) for i in range(clients)))
    return latencies, statuses


def run_mode(ack: str, *, clients: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="multihost-ack-") as tmp:
        hosts = Multihost(run_dir=Path(tmp) / "multihost", prefix="mhb", ack=ack)
        try:
            hosts.up()
            keys = KeyRing.from_file(hosts.private_jwks())
            registrar = sign_token(keys, 1, "rhenderson", "registrar")
            # More tokens than the rush can use: at most ~400 enrolls a second here.
            count = int(seconds * 600) + clients
            students = range(50000, 50000 + count)
            tokens = [sign_token(keys, s, f"ack{s}", "student") for s in students]
            with hosts.in_host("h3"):
                created = httpx.post(
                    hosts.enroll_gateway("h3") + API + "/sections",
                    headers={"Authorization": f"Bearer {registrar}"},
                    json={"course_id": 4, "section_number": 90, "instructor_id": 3,
                          "capacity": count},
                )  # fmt: skip
                created.raise_for_status()
                started = time.monotonic()
                latencies, statuses = asyncio.run(
                    rush(hosts, created.json()["id"], tokens, clients, seconds)
                )
                elapsed = time.monotonic() - started
        finally:
            hosts.down()
    latencies.sort()
    return {
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "answered_201": len(latencies),
        "other": sum(n for status, n in statuses.items() if status != 201),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.multihost_ack")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=1, help="each mode this many times, in turn")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {"local": [], "replica": []}
    for _ in range(args.rounds):
        for ack in results:
            result = run_mode(ack, clients=args.clients, seconds=args.seconds)
            results[ack].append(result)
            print(
                f"ENROLL_ACK={ack:<8} {result['per_second']:6.0f} enrolls/s  "
                f"p50 {result['p50_ms']:6.1f} ms  p95 {result['p95_ms']:6.1f} ms  "
                f"({result['answered_201']:.0f} × 201, {result['other']:.0f} other)",
                flush=True,
            )
    local = statistics.median(r["per_second"] for r in results["local"])
    replica = statistics.median(r["per_second"] for r in results["replica"])
    print(f"replica/local throughput: {replica / local:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
