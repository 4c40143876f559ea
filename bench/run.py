"""One command to measure the cluster: `./bin/bench` (python -m bench.run --help).

It starts its own cluster on free loopback ports in var/bench/<run>/ (three enrollment instances
on one database file, the three LiteFS auth nodes), then measures:
  1. rush: S students, K sections (capacity 30, waitlist 15), C concurrent clients doing enroll,
     drop, leave-waitlist and list-my-sections; then every SPEC §2 invariant on the database;
  2. read path: GET /sections on one instance, on all three at once, and a trivial /health;
  3. auth: register/s on the LiteFS primary and logins/s over the three nodes.
It prints a table and writes it as JSON to var/bench/results-<run>.json. Every loop is bounded in
count and time; traffic goes to 127.0.0.1 only.

KrakenD cannot be built on this project's machine (the Go module proxy refuses krakend-ce), so the
gateway columns of the issue cannot be measured here: requests carry the identity headers and the
gateway secret that the gateway would add.
"""

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.common.identity import gateway_headers as identity
from app.enrollment.init_db import init_db
from bench.invariants import status_counts, violations
from bench.loadclient import Connection
from bench.readpath import wrk, wrk_spread
from bench.rush import Sample, Student, run_rush, summarise
from tests.procs import ROOT, free_port, start_uvicorn, stop, wait_http

DEMO_PASSWORD = "registrar-day-2026"


class EnrollmentCluster:
    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "enroll"
        self.dir.mkdir(parents=True)
        self.db = self.dir / "enroll.db"
        init_db(self.db)
        self.secret_file = self.dir / "gateway.secret"
        self.secret_file.write_text(secrets.token_urlsafe(48))
        self.secret_file.chmod(0o600)
        self.secret = self.secret_file.read_text()
        self.ports = [free_port() for _ in range(3)]
        self.procs = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self) -> None:
        env = {"ENROLL_DATABASE": str(self.db), "ENROLL_GATEWAY_SECRET_FILE": str(self.secret_file)}
        for i, port in enumerate(self.ports):
            self.procs.append(
                start_uvicorn(
                    "app.enrollment.main:create_app",
                    port,
                    {**env, "ENROLL_INSTANCE": f"enrollment-{i}"},
                    self.dir / f"enrollment-{i}.log",
                )  # fmt: skip
            )
        for url, proc in zip(self.urls, self.procs, strict=True):
            wait_http(url + "/health", proc)

    def stop(self) -> None:
        stop(self.procs)


def create_sections(cluster: EnrollmentCluster, count: int) -> list[int]:
    registrar = identity(cluster.secret, 1, "rhenderson", "registrar")
    ids = []
    with httpx.Client(base_url=cluster.urls[0], headers=registrar, timeout=30) as client:
        course = client.post(
            "/courses", json={"department_id": 1, "code": "CPSC 999", "title": "Bench Rush"}
        ).json()["id"]
        for number in range(1, count + 1):
            body = {"course_id": course, "section_number": number, "instructor_id": 3,
                    "capacity": 30, "waitlist_capacity": 15}  # fmt: skip
            response = client.post("/sections", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def bench_rush(cluster: EnrollmentCluster, args) -> dict:
    sections = create_sections(cluster, args.sections)
    students = [
        Student(u, identity(cluster.secret, u, f"bench{u}", "student"))
        for u in range(100_000, 100_000 + args.students)
    ]
    samples, seconds = asyncio.run(
        run_rush(
            cluster.urls,
            students,
            sections,
            clients=args.clients,
            seconds=args.seconds,
            max_operations=args.max_operations,
        )  # fmt: skip
    )
    result = summarise("rush", samples, seconds)
    result["server_errors"] = sum(1 for s in samples if s.status is None or s.status >= 500)
    result["invariant_violations"] = violations(cluster.db)
    result["final_rows"] = status_counts(cluster.db)
    return result


def bench_read_path(cluster: EnrollmentCluster, args) -> list[dict]:
    student = identity(cluster.secret, 9, "ajohnson", "student")
    one = wrk(cluster.urls[0] + "/sections", student, seconds=args.read_seconds,
              connections=args.read_connections)  # fmt: skip
    three = wrk_spread([u + "/sections" for u in cluster.urls], student,
                       seconds=args.read_seconds, connections=args.read_connections)  # fmt: skip
    health = wrk(cluster.urls[0] + "/health", {}, seconds=args.read_seconds,
                 connections=args.read_connections)  # fmt: skip
    return [
        {"name": "GET /sections, one instance", **one},
        {"name": "GET /sections, three instances", **three},
        {"name": "GET /health (no app work), one instance", **health},
    ]


async def _timed_posts(
    urls: list[str], path: str, bodies: list[dict], concurrency: int
) -> tuple[list[Sample], float]:
    queue = list(enumerate(bodies))
    samples: list[Sample] = []

    async def worker(index: int) -> None:
        conn = Connection(urls[index % len(urls)])
        try:
            while queue:
                _, body = queue.pop()
                started = time.monotonic()
                reply = await conn.request("POST", path, {}, body)
                samples.append(Sample(path, reply.status, time.monotonic() - started))
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return samples, time.monotonic() - started


def bench_auth(run_dir: Path, args) -> list[dict]:
    # The launcher the e2e tests use; with brute-force limits raised, since every benchmark
    # client logs in from 127.0.0.1 and the limiter would otherwise be what is measured.
    from tests.e2e.conftest import ROOMY_LIMITS_ENV, AuthCluster

    cluster = AuthCluster.create(run_dir / "auth", ROOMY_LIMITS_ENV)
    try:
        started = cluster.start()
        primary, nodes = cluster.primary.url, [n.url for n in cluster.nodes.values()]
        people = [
            {"username": f"bench{i}", "password": DEMO_PASSWORD, "first_name": "Bench",
             "last_name": f"User {i}"}
            for i in range(args.registers)
        ]  # fmt: skip
        reg, reg_s = asyncio.run(_timed_posts([primary], "/register", people, args.auth_clients))
        creds = [{"username": p["username"], "password": DEMO_PASSWORD} for p in people]
        logins = (creds * (args.logins // len(creds) + 1))[: args.logins]
        log, log_s = asyncio.run(_timed_posts(nodes, "/login", logins, args.auth_clients))
        out = [summarise("register on the primary", reg, reg_s),
               summarise("login over 3 LiteFS nodes", log, log_s)]  # fmt: skip
        out[0]["cluster_start_s"] = round(started, 2)
        return out
    finally:
        cluster.close()


def table(results: dict) -> str:
    lines = [f"{'measurement':44} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}  answers"]
    rows = [results["rush"], *results["read_path"], *results["auth"]]
    for r in rows:
        rate = r.get("ops_per_s", r.get("requests_per_s"))
        answers = r.get("statuses") or {"non-2xx": r.get("non_2xx", 0)}
        lines.append(
            f"{r['name']:44} {rate:>9} {r.get('p50_ms', ''):>8} {r.get('p99_ms', ''):>8}  {answers}"
        )
    rush = results["rush"]
    lines.append(
        f"rush: {rush['operations']} operations in {rush['seconds']} s, p95 {rush['p95_ms']} ms,"
        f" 5xx/failed {rush['server_errors']},"
        f" invariant violations {len(rush['invariant_violations'])},"
        f" rows {rush['final_rows']}"
    )
    one, three = results["read_path"][0], results["read_path"][1]
    lines.append(
        f"read path: three instances give {three['requests_per_s'] / one['requests_per_s']:.2f}x"
        " one instance; through the gateway: not measured (KrakenD cannot be built here)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=20.0, help="rush duration bound")
    p.add_argument("--max-operations", type=int, default=100_000, help="rush count bound")
    p.add_argument("--read-seconds", type=int, default=5)
    p.add_argument("--read-connections", type=int, default=48)
    p.add_argument("--registers", type=int, default=100)
    p.add_argument("--logins", type=int, default=400)
    p.add_argument("--auth-clients", type=int, default=8)
    p.add_argument("--skip-auth", action="store_true")
    args = p.parse_args(argv)

    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = ROOT / "var" / "bench" / run
    run_dir.mkdir(parents=True)
    cluster = EnrollmentCluster(run_dir)
    results: dict = {"run": run, "args": vars(args)}
    try:
        cluster.start()
        results["rush"] = bench_rush(cluster, args)
        results["read_path"] = bench_read_path(cluster, args)
    finally:
        cluster.stop()
    results["auth"] = [] if args.skip_auth else bench_auth(run_dir, args)
    out = ROOT / "var" / "bench" / f"results-{run}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"results: {out.relative_to(ROOT)}")
    failed = results["rush"]["invariant_violations"] or results["rush"]["server_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
