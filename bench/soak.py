"""A soak: `./bin/bench soak [--minutes 10]` (python -m bench.soak --help).

The whole cluster on free loopback ports (harness/cluster.py), mixed traffic through both
gateways for a bounded time while things break on a schedule:
- the registration-day mix (enroll, drop, leave a waitlist, list) arriving at --rate a second
  through the enroll gateway (open loop), and a registration plus a sign-in every few seconds
  through the auth gateway; the students' tokens are signed again before they expire;
- every --kill-every seconds one enrollment instance is killed with SIGKILL (in turn), and half a
  period later one LiteFS replica is stopped and started again (in turn).
The run fails (exit status 1), naming why, on:
- any 5xx or cut connection, but for a request that was in flight when an instance was killed
  (sent at most GRACE seconds after the kill, answered after it): only that process could have
  been answering it; on any 401, 403, 422 or 429 (bench.rush.REFUSALS); on a registration or
  sign-in not answered 201 or 200;
- a broken SPEC §2 invariant, or an enrollment answered 201 that is not in the database;
- an account registered during the soak that does not sign in at the end;
- memory: each process of the cluster (the enrollment instances and their supervisors, each
  node's LiteFS and auth instance, the gateways, the web app) is measured over each of its lives,
  from --warm-up seconds after it was first seen to its last sample: one that grows by more than
  10% fails the run, and so does one that never lived long enough to be measured (lengthen
  --kill-every or shorten --warm-up).
It prints a table and writes var/bench/soak-<run>.json. Traffic goes to 127.0.0.1 only; the run
stops by itself.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import psutil
import uvloop

from bench.run import PREFIX, Rush
from bench.rush import Sample, failed, run_open_loop, summarise
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import ACCESS_TTL, Cluster
from harness.invariants import violations
from harness.procs import ROOT

PASSWORD = "soak-password-long-enough"
GRACE = 0.1  # seconds after a kill -9 in which a request may still reach the dying process
MAX_GROWTH = 10.0  # percent of RSS over one life of a process, after its warm-up


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` in KiB; 0 if it has ended."""
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.NoSuchProcess:
        return 0


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below `pid` (children of any of its threads: a Go program such as LiteFS
    starts its children from any); none if it has ended."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def command(proc: psutil.Process) -> str:
    """Its command line, words joined by spaces; empty if it has ended."""
    try:
        return " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return ""


def processes(cluster: Cluster) -> dict[str, int]:
    """Name -> pid of every long-running process of the cluster, as it is now."""
    found: dict[str, int] = {}
    for i, supervisor in enumerate(cluster.enrollment.procs):
        found[f"enrollment-{i} (bin/enrollment)"] = supervisor.pid
        pid = cluster.enrollment.serving_pid(i)
        if pid:
            found[f"enrollment-{i} (uvicorn)"] = pid
    for gateway in cluster.gateways:
        if gateway.proc is not None:
            found[f"{gateway.name} gateway (entr)"] = gateway.proc.pid
            for proc in descendants(gateway.proc.pid):
                if "krakend" in command(proc):
                    found[f"{gateway.name} gateway (krakend)"] = proc.pid
    for node in cluster.auth.nodes.values():
        if node.proc is None:
            continue
        found[f"{node.name} (bin/auth-node)"] = node.proc.pid
        for proc in descendants(node.proc.pid):
            line = command(proc)
            if "litefs" in line and "mount" in line:
                found[f"{node.name} (litefs)"] = proc.pid
            elif "uvicorn" in line:
                found[f"{node.name} (auth uvicorn)"] = proc.pid
    if cluster.web.proc is not None:
        found["web app"] = cluster.web.proc.pid
    return found


def memory_growth(lives: dict[tuple[str, int], list[tuple[float, int]]], warm_up: float) -> dict:
    """Per process name, the RSS growth (%) of each of its lives long enough to be measured: from
    the first sample `warm_up` seconds after the life was first seen to its last sample, which
    must be at least `warm_up` / 2 seconds later."""
    growth: dict[str, list[dict]] = {name: [] for name, _ in lives}
    for (name, pid), samples in lives.items():
        first = samples[0][0]
        warm = next(((t, kib) for t, kib in samples if t >= first + warm_up), None)
        if warm is None or samples[-1][0] - warm[0] < warm_up / 2:
            continue
        (t0, base), (t1, end) = warm, samples[-1]
        percent = round((end - base) / base * 100, 1)
        growth[name].append({"pid": pid, "from_s": round(t0), "to_s": round(t1),
                             "warm_kib": base, "end_kib": end, "percent": percent})  # fmt: skip
    return growth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=150.0, help="enroll-mix requests a second")
    p.add_argument("--kill-every", type=float, default=60.0, help="seconds between faults")
    p.add_argument("--warm-up", type=float, default=60.0, help="seconds before RSS is baselined")
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    p.add_argument(
        "--token-minutes",
        type=float,
        default=ACCESS_TTL / 60,
        help="lifetime of the students' tokens (the auth service's); signed again at half of it",
    )
    p.add_argument(
        "--no-resign",
        action="store_true",
        help="never sign the tokens again (to see the soak fail once they expire)",
    )
    args = p.parse_args(argv)
    seconds = args.minutes * 60
    token_seconds = args.token_minutes * 60
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cluster = Cluster(ROOT / "var" / "bench" / f"soak-{run}", ROOMY_LIMITS_ENV)
    report: dict = {"run": run, "args": vars(args), "faults": [], "tokens_signed_at_s": []}
    kills: list[float] = []  # time.monotonic() of each kill -9
    lives: dict[tuple[str, int], list[tuple[float, int]]] = {}  # (name, pid) -> (s, RSS KiB)
    try:
        cluster.start()
        rush = Rush(
            cluster, argparse.Namespace(**vars(args), max_operations=10**7, new_students=False)
        )
        students, sections = rush._fresh()
        rush.resign(token_seconds)
        signed = time.monotonic()
        traffic: dict = {}

        def enroll_traffic() -> None:
            samples, took = uvloop.run(
                run_open_loop(
                    cluster.enroll_gateway.url,
                    students,
                    sections,
                    rate=args.rate,
                    seconds=seconds,
                    prefix=PREFIX,
                )
            )
            traffic["samples"], traffic["seconds"] = samples, took

        mixer = threading.Thread(target=enroll_traffic)
        mixer.start()
        started = time.monotonic()
        auth = cluster.auth_gateway.url + "/auth_api"
        accounts: list[str] = []
        auth_answers: Counter = Counter()
        next_fault, fault_number = args.kill_every / 2, 0
        with httpx.Client(timeout=30) as client:
            while time.monotonic() - started < seconds:
                now = time.monotonic() - started
                username = f"soak{len(accounts)}-{secrets.token_hex(2)}"
                body = {"username": username, "password": PASSWORD, "first_name": "Soak",
                        "last_name": "Test"}  # fmt: skip
                try:
                    reply = client.post(auth + "/register", json=body)
                    auth_answers[f"register {reply.status_code}"] += 1
                    if reply.status_code == 201:
                        accounts.append(username)
                    login = {"username": accounts[-1] if accounts else "x", "password": PASSWORD}
                    signed_in = client.post(auth + "/login", json=login)
                    auth_answers[f"login {signed_in.status_code}"] += 1
                except httpx.HTTPError as exc:
                    auth_answers[type(exc).__name__] += 1
                for name, pid in processes(cluster).items():
                    if kib := rss_kib(pid):
                        lives.setdefault((name, pid), []).append((now, kib))
                if not args.no_resign and time.monotonic() - signed > token_seconds / 2:
                    rush.resign(token_seconds)
                    signed = time.monotonic()
                    report["tokens_signed_at_s"].append(round(now))
                if now >= next_fault:
                    if fault_number % 2 == 0:
                        index = (fault_number // 2) % len(cluster.enrollment.ports)
                        pid = cluster.enrollment.serving_pid(index)
                        if pid:
                            kills.append(time.monotonic())
                            os.kill(pid, signal.SIGKILL)
                        report["faults"].append(f"{now:.0f} s: kill -9 enrollment-{index}")
                    else:
                        name = ("secondary-1", "secondary-2")[(fault_number // 2) % 2]
                        cluster.auth.stop(name)
                        cluster.auth.start(name)
                        report["faults"].append(f"{now:.0f} s: restart {name}")
                    fault_number += 1
                    next_fault += args.kill_every / 2
                time.sleep(2)
        mixer.join()
        samples: list[Sample] = traffic["samples"]
        report["traffic"] = summarise("enroll mix, open loop", samples, traffic["seconds"])

        def at_a_kill(s: Sample) -> bool:
            return any(s.sent <= k + GRACE and s.done >= k for k in kills)

        excused = [s for s in samples if (s.status is None or s.status >= 500) and at_a_kill(s)]
        report["in_flight_at_a_kill"] = dict(Counter(failed(s) for s in excused))
        excused_ids = {id(s) for s in excused}
        report["failures"] = dict(
            Counter(why for s in samples if id(s) not in excused_ids and (why := failed(s)))
        )
        report["auth"] = dict(auth_answers)
        acknowledged = [body for student in students for body in student.acknowledged]
        report["acknowledged_201s"] = len(acknowledged)
        report["invariant_violations"] = violations(cluster.enrollment.db, acknowledged)
        lost = []
        with httpx.Client(timeout=30) as client:
            for username in accounts:
                login = {"username": username, "password": PASSWORD}
                if client.post(auth + "/login", json=login).status_code != 200:
                    lost.append(username)
        report["accounts"] = {"registered": len(accounts), "lost": lost}
    finally:
        cluster.close()
    growth = memory_growth(lives, args.warm_up)
    report["rss_growth_percent"] = growth
    reasons = [f"{n} × {why} in the enroll mix" for why, n in report.get("failures", {}).items()]
    reasons += [f"{n} × {what} at the auth gateway" for what, n in report.get("auth", {}).items()
                if what not in ("register 201", "login 200")]  # fmt: skip
    reasons += report.get("invariant_violations", [])
    if report.get("accounts", {}).get("lost"):
        reasons.append(f"accounts that no longer sign in: {report['accounts']['lost'][:10]}")
    for name, measured in sorted(growth.items()):
        if not measured:
            reasons.append(
                f"memory of {name} not measured: no life of it lasted --warm-up × 1.5 seconds"
                " (raise --minutes or --kill-every, or lower --warm-up)"
            )
        reasons += [f"memory of {name} grew {m['percent']}% from {m['from_s']} s to"
                    f" {m['to_s']} s" for m in measured if m["percent"] > MAX_GROWTH]  # fmt: skip
    report["reasons_to_fail"] = reasons
    out = ROOT / "var" / "bench" / f"soak-{run}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    t = report["traffic"]
    print(f"soak {args.minutes:g} min: {t['operations']} enroll-mix requests at {args.rate:g}/s,"
          f" p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, answers {t['statuses']}")  # fmt: skip
    print(f"failed, in flight at a kill -9: {report['in_flight_at_a_kill'] or 'none'};"
          f" failed otherwise: {report['failures'] or 'none'}; auth: {report['auth']}")  # fmt: skip
    print(f"faults: {report['faults']}; tokens signed again at {report['tokens_signed_at_s']} s")
    print(f"invariant violations: {len(report['invariant_violations'])}"
          f" ({report['acknowledged_201s']} enrollments answered 201 checked); accounts"
          f" registered {len(accounts)}, lost {len(report['accounts']['lost'])}")  # fmt: skip
    for name, measured in sorted(growth.items()):
        lives_text = ", ".join(
            f"{m['warm_kib']}->{m['end_kib']} KiB ({m['percent']:+}%, {m['from_s']}-{m['to_s']} s)"
            for m in measured
        )
        print(f"  RSS {name:34} {lives_text or 'not measured'}")
    print(f"report: {out.relative_to(ROOT)}")
    print(f"reasons this soak fails: {'; '.join(reasons) or 'none'}")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
