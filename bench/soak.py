"""A soak: `./bin/bench soak [--minutes 10]` (python -m bench.soak --help).

The whole cluster on free loopback ports (harness/cluster.py), mixed traffic through both
gateways for a bounded time while things break on a schedule:
- the registration-day mix (enroll, drop, leave a waitlist, list) arriving at --rate a second
  through the enroll gateway (open loop), and a registration plus a sign-in every few seconds
  through the auth gateway;
- every --kill-every seconds one enrollment instance is killed with SIGKILL (in turn), and half a
  period later one LiteFS replica is stopped and started again (in turn).
At the end: every SPEC §2 invariant on the enrollment database, every account registered during
the soak signs in, and the memory (RSS) of every process is compared between the end of the
warm-up and the end: a process that grows by more than 10% is reported. It prints a table and
writes var/bench/soak-<run>.json. Traffic goes to 127.0.0.1 only; the run stops by itself.
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
from bench.rush import run_open_loop, summarise
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import Cluster
from harness.invariants import violations
from harness.procs import ROOT

PASSWORD = "soak-password-long-enough"


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
    for i in range(len(cluster.enrollment.ports)):
        pid = cluster.enrollment.serving_pid(i)
        if pid:
            found[f"enrollment-{i} (uvicorn)"] = pid
    for gateway in cluster.gateways:
        if gateway.proc is not None:
            for proc in descendants(gateway.proc.pid):
                if "krakend" in command(proc):
                    found[f"{gateway.name} gateway (krakend)"] = proc.pid
    for node in cluster.auth.nodes.values():
        if node.proc is None:
            continue
        for proc in descendants(node.proc.pid):
            line = command(proc)
            if "litefs" in line and "mount" in line:
                found[f"{node.name} (litefs)"] = proc.pid
            elif "uvicorn" in line:
                found[f"{node.name} (auth uvicorn)"] = proc.pid
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=150.0, help="enroll-mix requests a second")
    p.add_argument("--kill-every", type=float, default=60.0, help="seconds between faults")
    p.add_argument("--warm-up", type=float, default=60.0, help="seconds before RSS is baselined")
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    args = p.parse_args(argv)
    seconds = args.minutes * 60
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cluster = Cluster(ROOT / "var" / "bench" / f"soak-{run}", ROOMY_LIMITS_ENV)
    report: dict = {"run": run, "args": vars(args), "faults": []}
    try:
        cluster.start()
        rush = Rush(
            cluster, argparse.Namespace(**vars(args), max_operations=10**7, new_students=False)
        )
        students, sections = rush._fresh()
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
        rss: dict[str, dict[str, int]] = {}
        baseline_taken = False
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
                if not baseline_taken and now >= args.warm_up:
                    rss["warm"] = {n: (pid, rss_kib(pid)) for n, pid in processes(cluster).items()}
                    baseline_taken = True
                if now >= next_fault:
                    if fault_number % 2 == 0:
                        index = (fault_number // 2) % len(cluster.enrollment.ports)
                        pid = cluster.enrollment.serving_pid(index)
                        if pid:
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
        rss["end"] = {n: (pid, rss_kib(pid)) for n, pid in processes(cluster).items()}
        samples = traffic["samples"]
        report["traffic"] = summarise("enroll mix, open loop", samples, traffic["seconds"])
        report["failures"] = dict(
            Counter(
                "connection failed" if s.status is None else f"{s.status}"
                for s in samples
                if s.status is None or s.status >= 500
            )
        )
        report["auth"] = dict(auth_answers)
        report["invariant_violations"] = violations(cluster.enrollment.db)
        lost = []
        with httpx.Client(timeout=30) as client:
            for username in accounts:
                login = {"username": username, "password": PASSWORD}
                if client.post(auth + "/login", json=login).status_code != 200:
                    lost.append(username)
        report["accounts"] = {"registered": len(accounts), "lost": lost}
        report["rss_kib"] = rss
    finally:
        cluster.close()
    # Growth of each process that ran from the end of the warm-up to the end; one restarted in
    # between (a fault of the soak) is a new process, not compared.
    growth = {
        name: round((rss["end"][name][1] - kib) / kib * 100, 1)
        for name, (pid, kib) in rss.get("warm", {}).items()
        if kib and rss.get("end", {}).get(name, (None, 0))[0] == pid
    }
    report["rss_growth_percent"] = growth
    out = ROOT / "var" / "bench" / f"soak-{run}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    t = report["traffic"]
    print(f"soak {args.minutes:g} min: {t['operations']} enroll-mix requests at {args.rate:g}/s,"
          f" p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, answers {t['statuses']}")  # fmt: skip
    print(f"failures by kind: {report['failures'] or 'none'}; auth: {report['auth']}")
    print(f"faults: {report['faults']}")
    print(f"invariant violations: {len(report['invariant_violations'])}; accounts registered"
          f" {len(accounts)}, lost {len(report['accounts']['lost'])}")  # fmt: skip
    for name in sorted(rss.get("end", {})):
        warm = rss.get("warm", {}).get(name, (None, None))[1]
        change = f"{growth[name]:+}%" if name in growth else "restarted during the soak"
        end = rss["end"][name][1]
        print(f"  RSS {name:32} after warm-up {warm} KiB, end {end} KiB ({change})")
    print(f"report: {out.relative_to(ROOT)}")
    grew = [n for n, g in growth.items() if g > 10]
    failed = report["invariant_violations"] or report["accounts"]["lost"] or grew
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
