"""One command to measure the cluster: `./bin/bench` (python -m bench.run --help).

It starts the whole cluster of the Procfile on free loopback ports in var/bench/<run>/ (three
enrollment instances on one database file, the three LiteFS auth nodes, both KrakenD gateways;
harness/cluster.py), then measures, all in the same run so the ratios are fair on a noisy machine:
  1. rush: S students, K sections (capacity 30, waitlist 15), C closed-loop clients doing enroll,
     drop, leave-waitlist and list-my-sections through the enroll gateway with real tokens;
  2. open loop: the same mix arriving at a fixed rate, 70% of the rush's throughput: the latency
     students feel when the system is busy but not saturated;
  3. ceiling: the same gateway config, token validation included, in front of the instances'
     trivial /health: the most any request through the gateway can do here;
  4. read path: GET /sections through the gateway and straight to the three instances (with the
     headers the gateway would set), and /health on one instance;
  5. scaling: closed-loop rushes over 25-400 clients, and in front of 1, 2 and 3 instances;
  6. auth through the auth gateway: register/s (LiteFS primary) and logins/s over the three nodes;
  7. the cost of Idempotency-Key: closed-loop rushes without keys and with them, in turns
     (--key-rounds pairs), CPU per operation of each side compared;
  8. multi-host: the rush of 1 through all three hosts' gateways of bin/multihost, on hosts of its
     own (bench/multihost_rush.py; needs root, else the row says it was skipped).
Every rush's writes carry an Idempotency-Key, a fresh one per request (the bench never retries),
as the web app's do; only the keyless side of 7 leaves them out.
Every rush starts from the same fresh catalog and ends with every SPEC §2 invariant checked on the
database, every enrollment answered 201 among its rows. A broken invariant, a 5xx, a cut
connection, a 401, 403, 422 or 429 (bench.rush.REFUSALS), a non-2xx answer or socket error in a
wrk run, or a registration or sign-in not answered 201 or 200 fails the run (exit status 1), each
named. It prints a table and writes var/bench/results-<run>.json and, with the scaling runs, a
PNG beside it. Every loop is bounded in count and time; traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import copy
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvloop

from app.common.identity import gateway_headers
from bench import watch
from bench.readpath import wrk, wrk_spread
from bench.rush import Sample, Student, failed, run_open_loop, run_rush, summarise
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import ACCESS_TTL, Cluster
from harness.db import copy_database
from harness.gateway import Gateway, render
from harness.invariants import status_counts, violations
from harness.loadclient import Connection
from harness.procs import ROOT, cpu_seconds, free_port
from harness.prometheus import Prometheus
from harness.seed import DEMO_PASSWORD

PREFIX = "/enroll_api"
CEILING_PATH = PREFIX + "/bench-ceiling"


def bench_cluster() -> tuple[str, Cluster]:
    """A new run's name (the time, UTC) and its cluster in var/bench/<run>/, not started yet."""
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = ROOT / "var" / "bench" / run
    run_dir.mkdir(parents=True)
    # Every benchmark client signs in from 127.0.0.1: with the abuse limits in place, the limiter
    # would be what is measured.
    return run, Cluster(run_dir, ROOMY_LIMITS_ENV)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_sections(gateway: str, registrar_token: str, count: int) -> list[int]:
    """`count` sections of a new course, made by the registrar through the enroll `gateway`."""
    registrar = bearer(registrar_token)
    ids = []
    base = gateway + PREFIX
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


def announce_students(instance: str, secret: str, user_ids: range) -> None:
    """Record the students at the enrollment service as the auth primary does when it creates an
    account (PUT /internal/users/{id}, app/auth/announce.py): on registration day every student's
    account exists, and enrollment has known it since. Their tokens are signed here rather than
    issued by sign-ins (argon2 for thousands of accounts would take minutes), so their accounts
    are announced here too. `--new-students` leaves them out: every student new at the rush's
    start, as before accounts were announced."""
    headers = {"X-Gateway-Secret": secret}
    with httpx.Client(base_url=instance, headers=headers, timeout=30) as client:
        for user_id in user_ids:
            body = {"username": f"bench{user_id}", "first_name": "Bench",
                    "last_name": str(user_id), "roles": ["student"]}  # fmt: skip
            client.put(f"/internal/users/{user_id}", json=body).raise_for_status()


class Rush:
    """Rushes through the enroll gateway, each on a fresh catalog: the enrollment database is put
    back to the seed and the sections created anew first, so every rush starts from the same
    state. The students' tokens are signed once. The load client runs on uvloop: it shares the
    machine with the servers, and the default loop would take CPU they could use."""

    def __init__(self, cluster: Cluster, args) -> None:
        self.cluster, self.args = cluster, args
        self.seed = cluster.var / "enroll-seed.db"
        user_ids = range(100_000, 100_000 + args.students)
        if not args.new_students:
            announce_students(cluster.enrollment.urls[0], cluster.secret, user_ids)
        copy_database(cluster.enrollment.db, self.seed)
        self.headers = [(u, {}) for u in user_ids]
        self.resign()
        self.violations: list[str] = []
        self.failures: list[str] = []  # every reason to fail the run, each named

    def resign(self, seconds: float = ACCESS_TTL) -> None:
        """Sign every student's token again, good for `seconds`; the students' headers are these
        very dicts, so a rush under way sends the new tokens from its next request."""
        for user_id, headers in self.headers:
            expires = int(time.time() + seconds)
            token = self.cluster.token(user_id, f"bench{user_id}", "student", exp=expires)
            headers["Authorization"] = f"Bearer {token}"

    def restore(self) -> None:
        """Put the enrollment database back to the seed (a page copy: bench/litefs_rush.py
        copies rows instead, as a LiteFS mount needs)."""
        copy_database(self.seed, self.cluster.enrollment.db)

    def _fresh(self) -> tuple[list[Student], list[int]]:
        self.restore()
        registrar = self.cluster.token(1, "rhenderson", "registrar")
        sections = create_sections(self.cluster.enroll_gateway.url, registrar, self.args.sections)
        return [Student(u, h) for u, h in self.headers], sections

    def _cpu(self) -> tuple[float, float, float]:
        """CPU seconds used so far by the enrollment instances, by the enroll gateway, and by
        this process (the load client: it shares the two cores with the cluster)."""
        cluster = self.cluster
        instances = [cluster.enrollment.serving_pid(i) for i in range(len(cluster.enrollment.urls))]
        gateway = cluster.enroll_gateway.proc
        return (
            cpu_seconds(pids=[p for p in instances if p is not None]),
            cpu_seconds(sessions=[gateway.pid] if gateway is not None else []),
            time.process_time(),
        )

    def _checked(
        self,
        name: str,
        samples: list[Sample],
        seconds: float,
        cpu_before: tuple[float, ...],
        students: list[Student],
    ) -> dict:
        result = summarise(name, samples, seconds)
        # CPU per operation: what a change costs or saves, far less noisy on this shared machine
        # than throughput (which moves with whatever else runs).
        after = self._cpu()
        keys = ("instances", "gateway", "client")
        for key, before, now in zip(keys, cpu_before, after, strict=True):
            result[f"{key}_cpu_us_per_op"] = round((now - before) / max(len(samples), 1) * 1e6)
        result["server_errors"] = sum(1 for s in samples if s.status is None or s.status >= 500)
        result["failed_answers"] = dict(Counter(why for s in samples if (why := failed(s))))
        acknowledged = [body for student in students for body in student.acknowledged]
        result["acknowledged_201s"] = len(acknowledged)
        found = violations(self.cluster.enrollment.db, acknowledged)
        result["invariant_violations"] = found
        result["final_rows"] = status_counts(self.cluster.enrollment.db)
        self.violations += [f"{name}: {v}" for v in found]
        self.failures += [f"{name}: {v}" for v in found]
        self.failures += [f"{name}: {n} × {why}" for why, n in result["failed_answers"].items()]
        return result

    def closed(self, name: str, clients: int, seconds: float, *, keys: bool = True) -> dict:
        students, sections = self._fresh()
        url = self.cluster.enroll_gateway.url
        cpu = self._cpu()
        samples, took = uvloop.run(
            run_rush(
                [url],
                students,
                sections,
                clients=clients,
                seconds=seconds,
                max_operations=self.args.max_operations,
                prefix=PREFIX,
                keys=keys,
            )
        )
        result = self._checked(name, samples, took, cpu, students)
        return result | {"clients": clients, "idempotency_keys": keys}

    def open(self, name: str, rate: float, seconds: float, *, keys: bool = True) -> dict:
        students, sections = self._fresh()
        url = self.cluster.enroll_gateway.url
        cpu = self._cpu()
        samples, took = uvloop.run(
            run_open_loop(
                url, students, sections, rate=rate, seconds=seconds, prefix=PREFIX, keys=keys
            )
        )
        result = self._checked(name, samples, took, cpu, students)
        return result | {"offered_per_s": round(rate, 1), "idempotency_keys": keys}


def paired_rush_arguments(p: argparse.ArgumentParser, sides: str) -> None:
    """The options of a bench of paired rushes on one cluster (bench/outbox.py,
    bench/litefs_rush.py): how many pairs of `sides`, and each rush's mix and bounds."""
    p.add_argument("--rounds", type=int, default=3, help=f"pairs of rushes, {sides}")
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=15.0, help="each rush's duration bound")
    p.add_argument("--max-operations", type=int, default=100_000, help="each rush's count bound")


def report_pairs(
    results: dict, rush: Rush, more_failures: list[str], stem: str, table: Callable[[dict], str]
) -> int:
    """The end of a bench of paired rushes (after `results |= compare(rows)`): its failures,
    var/bench/<stem>-<run>.json, its table printed, and its exit status."""
    results["server_errors"] = sum(r["server_errors"] for r in results["rows"])
    results["invariant_violations"] = rush.violations
    results["failures"] = rush.failures + more_failures
    out = ROOT / "var" / "bench" / f"{stem}-{results['run']}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"results: {out.relative_to(ROOT)}")
    return 1 if results["failures"] else 0


def ceiling_gateway(cluster: Cluster) -> Gateway:
    """The enroll gateway's own rendered config, token validator and all, with one endpoint
    more: CEILING_PATH, forwarded to the instances' /health, which does no work."""
    out = cluster.var / "ceiling-rendered.json"
    port = free_port()
    env = {**cluster.enroll_gateway.env, "GATEWAY_ENROLL_PORT": str(port)}
    env["GATEWAY_METRICS_PORT"] = str(free_port())
    env["GATEWAY_SECRET"] = cluster.secret
    checked = render("enroll", env, out)
    if checked.returncode != 0:
        raise RuntimeError(f"the enroll config did not render:\n{checked.stdout}{checked.stderr}")
    config = json.loads(out.read_text())
    template = next(e for e in config["endpoints"] if e["endpoint"] == PREFIX + "/sections")
    ceiling = copy.deepcopy(template)
    ceiling["endpoint"], ceiling["input_query_strings"] = CEILING_PATH, []
    ceiling["backend"][0]["url_pattern"] = "/health"
    # /health says nothing of caching, so nothing would be cached; dropped all the same, so the
    # ceiling is plainly the cost of passing through the gateway.
    ceiling["backend"][0]["extra_config"].pop("qos/http-cache", None)
    config["endpoints"].append(ceiling)
    gateway = Gateway.plain("ceiling", cluster.var, config)
    gateway.env["GOMAXPROCS"] = "1"  # as bin/gateway runs the real one
    return gateway


def bench_read_path(cluster: Cluster, args) -> list[dict]:
    """The same GETs through the gateway and straight to the instances: the section list (which
    the gateway may answer from its cache for CATALOG_CACHE_SECONDS) and one section's page
    (always live, so the gateway's own cost per request shows)."""
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
    rows = [{"name": "ceiling: gateway + token -> /health", **top}]
    for path, what in (("/sections", "cached list"), ("/sections/1", "live")):
        via_gateway = wrk(cluster.enroll_gateway.url + PREFIX + path, token, **options)
        three = wrk_spread([u + path for u in urls], direct, **options)
        rows += [
            {"name": f"GET {path} ({what}) through the gateway", **via_gateway},
            {"name": f"GET {path}, straight to 3 instances", **three},
        ]
    health = wrk(urls[0] + "/health", {}, **options)
    return [*rows, {"name": "GET /health (no app work), one instance", **health}]


def bench_scaling(cluster: Cluster, rush: Rush, args) -> dict:
    """Closed-loop rushes over 25-400 clients on the three instances, then with the gateway in
    front of 1, 2 and 3 instances at --clients clients."""
    by_clients = [rush.closed(f"{n} clients", n, args.scale_seconds) for n in args.scale_clients]
    by_instances = []
    gateway, all_backends = cluster.enroll_gateway, cluster.enrollment.urls
    try:
        for count in (1, 2, 3):
            gateway.stop()
            gateway.env["GATEWAY_ENROLL_BACKENDS"] = ",".join(all_backends[:count])
            gateway.start()
            row = rush.closed(f"{count} instance(s)", args.clients, args.scale_seconds)
            by_instances.append(row | {"instances": count})
    finally:
        if gateway.env["GATEWAY_ENROLL_BACKENDS"] != ",".join(all_backends):
            gateway.stop()
            gateway.env["GATEWAY_ENROLL_BACKENDS"] = ",".join(all_backends)
            gateway.start()
    return {"by_clients": by_clients, "by_instances": by_instances}


def bench_key_cost(rush: Rush, args) -> dict:
    """What Idempotency-Key costs: closed-loop rushes of --clients clients without keys and with
    them, in turns (--key-rounds pairs of --key-seconds each, on the same cluster, each on a fresh
    catalog, the first side alternating), so both sides meet the same noise. Compared by the
    median CPU per operation of the instances and of the gateway: steadier on this shared machine
    than throughput."""
    rows = []
    for number in range(1, args.key_rounds + 1):
        # Which side goes first alternates: the second rush of a pair ran on a warmer, fuller
        # database and WAL, which alone made keys look ~10% dearer when they always went second.
        for keys in (False, True) if number % 2 else (True, False):
            name = f"{'with' if keys else 'without'} Idempotency-Key, pair {number}"
            rows.append(rush.closed(name, args.clients, args.key_seconds, keys=keys))
    sides: dict = {}
    for side, keys in (("without", False), ("with", True)):
        mine = [r for r in rows if r["idempotency_keys"] is keys]
        sides[side] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("instances_cpu_us_per_op", "gateway_cpu_us_per_op", "ops_per_s", "p99_ms")
        }
    before, after = sides["without"], sides["with"]
    ratios = {
        key: round(after[key] / before[key], 3) if before[key] else None
        for key in ("instances_cpu_us_per_op", "gateway_cpu_us_per_op")
    }
    return {"rows": rows, **sides, "ratio_with_to_without": ratios}


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
    reg, reg_s = uvloop.run(_timed_posts(url, "/auth_api/register", people, args.auth_clients))
    creds = [{"username": p["username"], "password": DEMO_PASSWORD} for p in people]
    logins = (creds * (args.logins // len(creds) + 1))[: args.logins]
    log, log_s = uvloop.run(_timed_posts(url, "/auth_api/login", logins, args.auth_clients))
    return [
        summarise("register through the auth gateway", reg, reg_s),
        summarise("login through the auth gateway (2 replicas)", log, log_s),
    ]


def plot(results: dict, path: Path) -> None:
    """The scaling picture: throughput and p99 against clients, and against instances."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scaling = results["scaling"]
    clients = results["args"]["clients"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    panels = (
        (axes[0], scaling["by_clients"], "clients", "closed-loop clients (3 instances)"),
        (
            axes[1],
            scaling["by_instances"],
            "instances",
            f"enrollment instances ({clients} clients)",
        ),
    )
    for ax, rows, key, label in panels:
        xs = [r[key] for r in rows]
        ax.plot(xs, [r["ops_per_s"] for r in rows], "o-", color="tab:blue")
        ax.set_xlabel(label)
        ax.set_ylabel("operations/s through the gateway", color="tab:blue")
        ax.set_ylim(bottom=0)
        ax.set_xticks(xs)
        twin = ax.twinx()
        twin.plot(xs, [r["p99_ms"] for r in rows], "s--", color="tab:red")
        twin.set_ylabel("p99 latency, ms (dashed)", color="tab:red")
        twin.set_ylim(bottom=0)
    fig.suptitle(
        f"Registration-day rush through the enroll gateway, run {results['run']}"
        f" (ceiling {results['read_path'][0]['requests_per_s']:.0f} req/s)"
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(results: dict) -> str:
    lines = [f"{'measurement':44} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}  answers"]
    scaling = results.get("scaling", {})
    rows = [
        results["rush"],
        results["open_loop"],
        *results["read_path"],
        *scaling.get("by_clients", []),
        *scaling.get("by_instances", []),
        *results.get("key_cost", {}).get("rows", []),
        *results["auth"],
        *([results["multihost"]] if "ops_per_s" in results.get("multihost", {}) else []),
    ]
    for r in rows:
        rate = r.get("ops_per_s", r.get("requests_per_s"))
        answers = r.get("statuses") or {"non-2xx": r.get("non_2xx", 0)}
        lines.append(
            f"{r['name']:44} {rate:>9} {r.get('p50_ms', ''):>8} {r.get('p99_ms', ''):>8}  {answers}"
        )
    rush, open_loop = results["rush"], results["open_loop"]
    lines.append(
        f"rush: {rush['operations']} operations in {rush['seconds']} s, p95 {rush['p95_ms']} ms;"
        f" open loop offered {open_loop['offered_per_s']}/s;"
        f" 5xx/failed in all rushes {results['server_errors']};"
        f" invariant violations {len(results['invariant_violations'])}"
    )
    lines.append(f"reasons this run fails: {'; '.join(results['failures']) or 'none'}")
    if "skipped" in results.get("multihost", {}):
        lines.append(f"{results['multihost']['name']}: skipped, {results['multihost']['skipped']}")
    lines.append(
        f"CPU per rush operation: instances {rush['instances_cpu_us_per_op']} µs,"
        f" enroll gateway {rush['gateway_cpu_us_per_op']} µs,"
        f" load client {rush['client_cpu_us_per_op']} µs"
    )
    if "key_cost" in results:
        cost = results["key_cost"]
        sides = [
            f"{who} {cost['with'][key]} µs with keys, {cost['without'][key]} µs without"
            f" (× {cost['ratio_with_to_without'][key]})"
            for who, key in (("instances", "instances_cpu_us_per_op"),
                             ("gateway", "gateway_cpu_us_per_op"))
        ]  # fmt: skip
        pairs = len(cost["rows"]) // 2
        lines.append(f"Idempotency-Key, CPU per rush operation (medians of {pairs} pairs): "
                     + "; ".join(sides))  # fmt: skip
    ratios = results["ratios"]
    lines.append(
        f"ratios in this run: rush / ceiling {ratios['rush_to_ceiling']:.2f};"
        f" GET /sections gateway / direct {ratios['read_gateway_to_direct']:.2f};"
        f" GET /sections/1 gateway / direct {ratios['live_read_gateway_to_direct']:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=20.0, help="closed-loop rush duration bound")
    p.add_argument("--max-operations", type=int, default=100_000, help="rush count bound")
    p.add_argument("--open-seconds", type=float, default=15.0, help="open-loop rush duration")
    p.add_argument("--open-load", type=float, default=0.7, help="offered rate / rush throughput")
    p.add_argument("--read-seconds", type=int, default=5)
    p.add_argument("--read-connections", type=int, default=48)
    p.add_argument("--scale-clients", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    p.add_argument("--scale-seconds", type=float, default=6.0)
    p.add_argument("--registers", type=int, default=100)
    p.add_argument("--logins", type=int, default=400)
    p.add_argument("--auth-clients", type=int, default=8)
    p.add_argument("--skip-auth", action="store_true")
    p.add_argument(
        "--key-rounds",
        type=int,
        default=2,
        help="pairs of rushes without and with Idempotency-Key for its cost (0: none)",
    )
    p.add_argument("--key-seconds", type=float, default=6.0, help="duration of each of those")
    p.add_argument(
        "--new-students",
        action="store_true",
        help="do not announce the students' accounts first: each is recorded at its first request",
    )
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument(
        "--skip-multihost",
        action="store_true",
        help="no rush through the three hosts of bin/multihost (about a minute more)",
    )
    p.add_argument(
        "--skip-prometheus",
        action="store_true",
        help="no Prometheus scraping the cluster (and no picture of the rush as it saw it)",
    )
    args = p.parse_args(argv)

    run, cluster = bench_cluster()
    prometheus = None if args.skip_prometheus else Prometheus(cluster.var, cluster.scrape_targets())
    results: dict = {"run": run, "args": vars(args)}
    try:
        cluster.start()
        if prometheus is not None:
            prometheus.start()
        rush = Rush(cluster, args)
        began = time.time()
        results["rush"] = rush.closed("rush through the enroll gateway", args.clients, args.seconds)
        rate = results["rush"]["ops_per_s"] * args.open_load
        opened = time.time()
        results["open_loop"] = rush.open(f"open loop at {args.open_load:.0%} of it", rate,
                                         args.open_seconds)  # fmt: skip
        ended = time.time()
        if prometheus is not None:
            results["prometheus"] = watch.rush_as_seen(prometheus, began - 3, ended + 3)
            results["prometheus_marks"] = {"closed loop": 3.0, "open loop": opened - began + 3}
        results["read_path"] = bench_read_path(cluster, args)
        if not args.skip_scaling:
            results["scaling"] = bench_scaling(cluster, rush, args)
        if args.key_rounds > 0:
            results["key_cost"] = bench_key_cost(rush, args)
        results["auth"] = [] if args.skip_auth else bench_auth(cluster, args)
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.close()
    if not args.skip_multihost:  # after the one-host cluster: the two never share the cores
        from bench.multihost_rush import bench_multihost  # it takes this module's helpers

        results["multihost"] = bench_multihost(args)
    scaling = results.get("scaling", {})
    rushes = [results["rush"], results["open_loop"], *scaling.get("by_clients", []),
              *scaling.get("by_instances", []),
              *results.get("key_cost", {}).get("rows", []),
              *([results["multihost"]] if "server_errors" in results.get("multihost", {})
                else [])]  # fmt: skip
    results["server_errors"] = sum(r["server_errors"] for r in rushes)
    results["invariant_violations"] = rush.violations
    results["failures"] = (
        rush.failures
        + results.get("multihost", {}).get("failures", [])
        + [
            f"{r['name']}: {r['non_2xx']} non-2xx, {r['errors']} socket errors (wrk)"
            for r in results["read_path"]
            if r["non_2xx"] or r["errors"]
        ]
    )
    for r, wanted in zip(results["auth"], ("201", "200"), strict=False):
        if set(r["statuses"]) != {wanted}:
            results["failures"].append(f"{r['name']}: answers {r['statuses']}, not all {wanted}")
    top, listed, listed_direct, live, live_direct = (
        r["requests_per_s"] for r in results["read_path"][:5]
    )
    results["ratios"] = {
        "rush_to_ceiling": results["rush"]["ops_per_s"] / top,
        "read_gateway_to_direct": listed / listed_direct,
        "live_read_gateway_to_direct": live / live_direct,
    }
    out = ROOT / "var" / "bench" / f"results-{run}.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"results: {out.relative_to(ROOT)}")
    if prometheus is not None:
        seen = out.with_name(out.stem + "-prometheus.png")
        watch.plot(results["prometheus"], results["prometheus_marks"], seen,
                   f"The rush as Prometheus saw it, run {run}")  # fmt: skip
        print(f"the rush as Prometheus saw it: {seen.relative_to(ROOT)}")
    if scaling:
        picture = out.with_suffix(".png")
        plot(results, picture)
        print(f"scaling picture: {picture.relative_to(ROOT)}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
