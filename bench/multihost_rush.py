"""The multi-host column of `./bin/bench` (issue 29): bench/run.py's closed-loop rush (its mix,
students, sections and clients) through all three hosts' enroll gateways of bin/multihost,
the clients spread evenly over them, from h3's network. Alone: `python -m bench.multihost_rush`.

The hosts are its own (harness/multihost.py, prefix `mhr`, in a temporary directory under var/),
brought up for the rush and down after it, as bin/multihost makes them: ENROLL_ACK=replica, h2's
and h3's instances relaying their writes to h1's. The students are announced to h1's instances
(as the auth primary announces accounts), the sections made through h3's gateway, and the rush's
tokens signed with the hosts' own key. After it, every SPEC §2 invariant is checked on h1's copy
(the primary's), every enrollment answered 201 among its rows. Needs root (network namespaces,
LiteFS).
"""

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil
import uvloop

from app.auth.tokens import KeyRing
from bench.litefs_rush import settings_option
from bench.run import PREFIX, announce_students, bearer, create_sections
from bench.rush import Student, failed, run_rush, summarise
from harness.cluster import sign_token
from harness.invariants import violations
from harness.multihost import HOSTS, Multihost, MultihostError, namespace_pids
from harness.procs import ROOT

NAME = "rush through the 3 hosts' gateways"


def bench_multihost(args, extra_env: dict[str, str] | None = None) -> dict:
    """The rush through the three hosts (a bench/run.py result row, with `failures`), or a row
    that says why it was not run (not root). `extra_env`: settings of every instance."""
    if os.geteuid() != 0:
        return {"name": NAME, "skipped": "needs root (network namespaces, LiteFS)", "failures": []}
    with tempfile.TemporaryDirectory(prefix="bench-multihost-", dir=ROOT / "var") as tmp:
        hosts = Multihost(run_dir=Path(tmp) / "multihost", prefix="mhr", extra_env=extra_env or {})
        try:
            up_seconds = hosts.up()
            keys = KeyRing.from_file(hosts.private_jwks())
            user_ids = range(100_000, 100_000 + args.students)
            secret = (hosts.host_dir("h1") / "var" / "gateway.secret").read_text().strip()
            students = [
                Student(u, bearer(sign_token(keys, u, f"bench{u}", "student"))) for u in user_ids
            ]
            registrar = sign_token(keys, 1, "rhenderson", "registrar")
            with hosts.in_host("h3"):
                announce_students(hosts.enroll_urls("h1")[0], secret, user_ids)
                sections = create_sections(hosts.enroll_gateway("h3"), registrar, args.sections)
                before = cpu_by_kind(hosts)
                samples, took = uvloop.run(
                    run_rush(
                        [hosts.enroll_gateway(host) for host in HOSTS],
                        students,
                        sections,
                        clients=args.clients,
                        seconds=args.seconds,
                        max_operations=args.max_operations,
                        prefix=PREFIX,
                    )
                )
                after = cpu_by_kind(hosts)
            result = summarise(NAME, samples, took)
            result["cpu_us_per_op"] = {
                key: round((after[key] - before.get(key, 0.0)) / max(len(samples), 1) * 1e6)
                for key in sorted(after)
            }
            acknowledged = [body for student in students for body in student.acknowledged]
            found = violations(hosts.database("h1", "enroll.db"), acknowledged)
        finally:
            hosts.down()
    result["up_seconds"] = round(up_seconds, 1)
    result["server_errors"] = sum(1 for s in samples if s.status is None or s.status >= 500)
    result["failed_answers"] = dict(Counter(why for s in samples if (why := failed(s))))
    result["acknowledged_201s"] = len(acknowledged)
    result["invariant_violations"] = found
    result["failures"] = [f"{NAME}: {v}" for v in found] + [
        f"{NAME}: {n} × {why}" for why, n in result["failed_answers"].items()
    ]
    return result


# What each process of a host is, by its command line (harness/multihost.py starts them).
KINDS = (
    ("litefs", "LiteFS"),
    ("krakend", "gateways"),
    ("app.auth.main", "auth"),
    ("bin/auth-node", "auth"),
    ("bin/enrollment", "enrollment"),
    ("app.enrollment", "enrollment"),
)


def cpu_by_kind(hosts: Multihost) -> dict[str, float]:
    """CPU seconds (user + system) used so far, per host and kind of process ("h1 LiteFS", "h2
    enrollment", ...), and by this process, the load client ("client")."""
    found: dict[str, float] = {}
    for host in HOSTS:
        for pid in namespace_pids(hosts.namespace(host)):
            if pid == os.getpid():  # the client, on h3's network while it runs: counted below
                continue
            try:
                proc = psutil.Process(pid)
                cmdline = " ".join(proc.cmdline())
                times = proc.cpu_times()
            except psutil.Error:
                continue
            kind = next((name for part, name in KINDS if part in cmdline), "other")
            key = f"{host} {kind}"
            found[key] = found.get(key, 0.0) + times.user + times.system
    own = psutil.Process().cpu_times()
    found["client"] = own.user + own.system
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=2000)
    p.add_argument("--sections", type=int, default=40)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--max-operations", type=int, default=100_000)
    settings_option(p, "--env", "a setting of every enrollment instance (repeatable)")
    args = p.parse_args(argv)
    try:
        result = bench_multihost(args, dict(args.env))
    except MultihostError as exc:
        sys.exit(f"bin/multihost: {exc}")
    if "skipped" in result:
        print(f"{NAME}: skipped, {result['skipped']}")
        return 1
    print(
        f"{NAME}: {result['ops_per_s']} ops/s, p50 {result['p50_ms']} ms, p99"
        f" {result['p99_ms']} ms, {result['statuses']}; hosts up in {result['up_seconds']} s"
    )
    per_op = result["cpu_us_per_op"]
    print(
        f"CPU per operation, µs: {sum(per_op.values())} in all; "
        + ", ".join(f"{key} {value}" for key, value in per_op.items())
    )
    print(f"reasons this run fails: {'; '.join(result['failures']) or 'none'}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
