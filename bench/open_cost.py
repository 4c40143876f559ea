"""What a request costs the cluster in an open loop against a saturated closed loop:

    python -m bench.open_cost [--rates 150 300 600 800] [--seconds 8] [--repeat 2]

Starts the whole cluster once (harness/cluster.py) and, `--repeat` times, runs a closed-loop
rush of 200 clients and then open loops at each of `--rates` requests a second, each on a fresh
catalog, through the real gateway. For each it prints the CPU per request of the instances (user
and system apart), the gateway and the load client, and the instances' context switches per
request (voluntary: waiting for work; involuntary: preempted by another process).

Why: `./bin/bench` offers its open loop at 70% of the closed rush's throughput, so what decides
whether the open loop keeps its latency is how much more an open-loop request costs than a
closed-loop one on the same two cores, not what either costs.
"""

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.run import Rush
from harness.auth_cluster import ROOMY_LIMITS_ENV
from harness.cluster import Cluster
from harness.procs import cpu_and_switches


def measured(name: str, pids: list[int], run: Callable[[], dict]) -> str:
    before = cpu_and_switches(pids)
    result = run()
    after = cpu_and_switches(pids)
    n = max(result["operations"], 1)
    user, system, voluntary, involuntary = (b - a for a, b in zip(before, after, strict=True))
    return (
        f"{name:>14}: {result['ops_per_s']:7.1f} ops/s, p50 {result['p50_ms']:6.1f} ms,"
        f" p99 {result['p99_ms']:7.1f} ms | CPU µs per request: instances"
        f" {user / n * 1e6:5.0f} user + {system / n * 1e6:4.0f} system,"
        f" gateway {result['gateway_cpu_us_per_op']:4}, client {result['client_cpu_us_per_op']:3}"
        f" | instance context switches per request: {voluntary / n:4.2f} waiting,"
        f" {involuntary / n:4.2f} preempted"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", type=float, nargs="+", default=[150, 300, 600, 800])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="bench-open-cost-")) / "var", ROOMY_LIMITS_ENV)
    try:
        cluster.start()
        rush_args = argparse.Namespace(
            sections=40, students=2000, max_operations=100_000, new_students=False
        )
        rush = Rush(cluster, rush_args)
        pids = [cluster.enrollment.serving_pid(i) for i in range(len(cluster.enrollment.urls))]
        if None in pids:
            sys.exit("an enrollment instance is not serving")
        serving = [pid for pid in pids if pid is not None]
        for _ in range(args.repeat):
            closed = functools.partial(rush.closed, "closed", 200, args.seconds)
            print(measured("closed, 200", serving, closed), flush=True)
            for rate in args.rates:
                opened = functools.partial(rush.open, "open", rate, args.seconds)
                print(measured(f"open, {rate:.0f}/s", serving, opened), flush=True)
        print(f"reasons this run fails: {'; '.join(rush.failures) or 'none'}")
        return 1 if rush.failures else 0
    finally:
        cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
