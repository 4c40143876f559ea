"""One command to measure the cluster: `./bin/bench` (python -m bench.run --help).

It starts the whole cluster of the Procfile on free loopback ports in var/bench/<run>/ (three
enrollment instances on one database file, the three LiteFS auth nodes, both KrakenD gateways;
harness/cluster.py), then measures, all in the same run so the ratios are fair on a noisy machine:
  1. rush: S students, K sections (capacity 30, waitlist 15), C concurrent clients doing enroll,
     drop, leave-waitlist and list-my-sections through the enroll gateway with real tokens; then
     every SPEC §2 invariant on the database;
  2. ceiling: the same gateway config, token validation included, in front of the instances'
     trivial /health: the most any request through the gateway can do here;
  3. read path: GET /sections through the gateway and straight to the three instances (with the
     headers the gateway would set), and /health on one instance;
  4. auth through the auth gateway: register/s (LiteFS primary) and logins/s over the three nodes.
It prints a table and writes it as JSON to var/bench/results-<run>.json. Every loop is bounded in
count and time; traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import copy
import json
import sys
import time
from datetime import UTC, datetime

import httpx

from app.common.identity import gateway_headers
from bench.readpath import wrk, wrk_spread
from bench.rush import Sample, Student, run_rush, summarise
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import Cluster
from harness.gateway import Gateway, render
from harness.invariants import status_counts, violations
from harness.loadclient import Connection
from harness.procs import ROOT, free_port
from harness.seed import DEMO_PASSWORD

PREFIX = "/enroll_api"
CEILING_PATH = PREFIX + "/bench-ceiling"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_sections(cluster: Cluster, count: int) -> list[int]:
    registrar = bearer(cluster.token(1, "rhenderson", "registrar"))
    ids = []
    base = cluster.enroll_gateway.url + PREFIX
    with httpx.Client(base_url=base, headers=registrar, timeout=30) as client:
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


def bench_rush(cluster: Cluster, args) -> dict:
    sections = create_sections(cluster, args.sections)
    students = [
        Student(u, bearer(cluster.token(u, f"bench{u}", "student")))
        for u in range(100_000, 100_000 + args.students)
    ]
    samples, seconds = asyncio.run(
        run_rush(
            [cluster.enroll_gateway.url],
            students,
            sections,
            clients=args.clients,
            seconds=args.seconds,
            max_operations=args.max_operations,
            prefix=PREFIX,
        )
    )
    result = summarise("rush through the enroll gateway", samples, seconds)
    result["server_errors"] = sum(1 for s in samples if s.status is None or s.status >= 500)
    result["invariant_violations"] = violations(cluster.enrollment.db)
    result["final_rows"] = status_counts(cluster.enrollment.db)
    return result


def ceiling_gateway(cluster: Cluster) -> Gateway:
    """The enroll gateway's own rendered config, token validator and all, with one endpoint
    more: CEILING_PATH, forwarded to the instances' /health, which does no work."""
    out = cluster.var / "ceiling-rendered.json"
    port = free_port()
    env = {**cluster.enroll_gateway.env, "GATEWAY_ENROLL_PORT": str(port)}
    env["GATEWAY_SECRET"] = cluster.secret
    checked = render("enroll", env, out)
    if checked.returncode != 0:
        raise RuntimeError(f"the enroll config did not render:\n{checked.stdout}{checked.stderr}")
    config = json.loads(out.read_text())
    template = next(e for e in config["endpoints"] if e["endpoint"] == PREFIX + "/sections")
    ceiling = copy.deepcopy(template)
    ceiling["endpoint"], ceiling["input_query_strings"] = CEILING_PATH, []
    ceiling["backend"][0]["url_pattern"] = "/health"
    config["endpoints"].append(ceiling)
    return Gateway.plain("ceiling", cluster.var, config)


def bench_read_path(cluster: Cluster, args) -> list[dict]:
    who = (9, "ajohnson", "student")
    token = bearer(cluster.token(*who))
    direct = gateway_headers(cluster.secret, *who)
    urls = cluster.enrollment.urls
    options = {"seconds": args.read_seconds, "connections": args.read_connections}
    ceiling = ceiling_gateway(cluster)
    ceiling.start()
    try:
        top = wrk(ceiling.url + CEILING_PATH, token, **options)
    finally:
        ceiling.stop()
    via_gateway = wrk(cluster.enroll_gateway.url + PREFIX + "/sections", token, **options)
    three = wrk_spread([u + "/sections" for u in urls], direct, **options)
    health = wrk(urls[0] + "/health", {}, **options)
    return [
        {"name": "ceiling: gateway + token -> /health", **top},
        {"name": "GET /sections through the gateway", **via_gateway},
        {"name": "GET /sections, straight to 3 instances", **three},
        {"name": "GET /health (no app work), one instance", **health},
    ]


async def _timed_posts(
    url: str, path: str, bodies: list[dict], concurrency: int
) -> tuple[list[Sample], float]:
    queue = list(bodies)
    samples: list[Sample] = []

    async def worker() -> None:
        conn = Connection(url)
        try:
            while queue:
                body = queue.pop()
                started = time.monotonic()
                reply = await conn.request("POST", path, {}, body)
                samples.append(Sample(path, reply.status, time.monotonic() - started))
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.monotonic() - started


def bench_auth(cluster: Cluster, args) -> list[dict]:
    people = [
        {"username": f"bench{i}", "password": DEMO_PASSWORD, "first_name": "Bench",
         "last_name": f"User {i}"}
        for i in range(args.registers)
    ]  # fmt: skip
    url = cluster.auth_gateway.url
    reg, reg_s = asyncio.run(_timed_posts(url, "/auth_api/register", people, args.auth_clients))
    creds = [{"username": p["username"], "password": DEMO_PASSWORD} for p in people]
    logins = (creds * (args.logins // len(creds) + 1))[: args.logins]
    log, log_s = asyncio.run(_timed_posts(url, "/auth_api/login", logins, args.auth_clients))
    return [
        summarise("register through the auth gateway", reg, reg_s),
        summarise("login through the auth gateway (3 nodes)", log, log_s),
    ]


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
    ratios = results["ratios"]
    lines.append(
        f"ratios in this run: rush / ceiling {ratios['rush_to_ceiling']:.2f};"
        f" GET /sections gateway / direct {ratios['read_gateway_to_direct']:.2f}"
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
    # Every benchmark client signs in from 127.0.0.1: with the abuse limits in place, the limiter
    # would be what is measured.
    cluster = Cluster(run_dir, ROOMY_LIMITS_ENV)
    results: dict = {"run": run, "args": vars(args)}
    try:
        cluster.start()
        results["rush"] = bench_rush(cluster, args)
        results["read_path"] = bench_read_path(cluster, args)
        results["auth"] = [] if args.skip_auth else bench_auth(cluster, args)
    finally:
        cluster.close()
    top, via_gateway, three = (r["requests_per_s"] for r in results["read_path"][:3])
    results["ratios"] = {
        "rush_to_ceiling": results["rush"]["ops_per_s"] / top,
        "read_gateway_to_direct": via_gateway / three,
    }
    out = ROOT / "var" / "bench" / f"results-{run}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"results: {out.relative_to(ROOT)}")
    failed = results["rush"]["invariant_violations"] or results["rush"]["server_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
