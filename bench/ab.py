"""A paired comparison of the enrollment service at two revisions, in one cluster and one run, so
a change is measured against the noise of this machine rather than against yesterday's figure:

    python -m bench.ab REV [--rounds 3] [--rate 500]

Starts the whole cluster (harness/cluster.py) once, then, round after round, runs the three
enrollment instances from REV (a git worktree) and from this working tree in turn, and measures
each with a closed-loop rush (200 clients) and an open-loop rush at --rate requests a second,
each on a fresh catalog, through the real gateway. Everything else (KrakenD, LiteFS, auth) stays
the same between the two.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import Rush
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import Cluster
from harness.procs import ROOT


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", help="the git revision to compare this working tree with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=float, default=500.0, help="open-loop requests a second")
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    old = work / "tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.rev], check=True)
    rush_args = argparse.Namespace(
        sections=40, students=2000, max_operations=100_000, new_students=False
    )
    cluster = Cluster(work / "var", ROOMY_LIMITS_ENV)
    try:
        cluster.start()
        rush = Rush(cluster, rush_args)
        for _ in range(args.rounds):
            for name, tree in ((args.rev, old), ("this tree", ROOT)):
                cluster.enrollment.stop()
                cluster.enrollment.start(tree)
                closed = rush.closed(name, 200, args.seconds)
                opened = rush.open(name, args.rate, args.seconds)
                print(
                    f"{name:>12}: closed {closed['ops_per_s']} ops/s p99 {closed['p99_ms']} ms,"
                    f" CPU µs/op instances {closed['instances_cpu_us_per_op']}"
                    f" gateway {closed['gateway_cpu_us_per_op']}, 5xx {closed['server_errors']}"
                    f" | open {args.rate:.0f}/s p50 {opened['p50_ms']} p99 {opened['p99_ms']} ms,"
                    f" CPU µs/op instances {opened['instances_cpu_us_per_op']}"
                    f" gateway {opened['gateway_cpu_us_per_op']}, 5xx {opened['server_errors']}",
                    flush=True,
                )
        print(f"invariant violations: {rush.violations or 'none'}")
        print(f"reasons this run fails: {'; '.join(rush.failures) or 'none'}")
        return 1 if rush.failures else 0
    finally:
        cluster.close()
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], check=False)


if __name__ == "__main__":
    sys.exit(main())
