"""The rush through the gateway with the enrollment database on a LiteFS mount against the plain
file, in one run (issue 29, "LiteFS's write cost"): `python -m bench.litefs_rush [--rounds 3]`.

It starts the cluster as `./bin/bench` does (bench/run.py `bench_cluster`) and beside it one
LiteFS node of the enrollment database, primary by static lease with no replica, as h1 runs it
under bin/multihost (bench/litefs_writes.py `LiteFSNode`: the same config but on loopback), then
runs closed-loop rushes (bench/run.py's mix, clients and students) on both files in turns:
LITEFS, PLAIN, PLAIN, LITEFS, ... for --rounds pairs, the three enrollment instances restarted
before each rush on that side's file (ENROLL_DATABASE; on the mount, the writer lock file outside
it, as bin/multihost names one), each rush from the same catalog. Which side goes first
alternates, as bench/outbox.py's pairs do. ENROLL_ACK stays `local`: one node, no replica to wait
for, so what is measured is the mount. `--litefs-env KEY=VALUE` adds a setting to the LiteFS
side's instances only (to measure a change against the plain file as shipped).

Both files are put back to the seed by copying rows (harness/db.py `restore_rows`: a page copy
into the mount is not a transaction LiteFS is sure to take), on both sides alike.

Each side: operations/s, p99, CPU per operation of the instances, the gateway and the LiteFS
process (medians over its rounds); LiteFS / plain, of the medians and of each pair, and the median
of the pairs' ratios. Target: at least 0.60. The run fails (exit status 1), naming why, as
bench/run.py's does (a broken SPEC §2 invariant, a 5xx, a cut connection, a refusal). It prints a
table and writes var/bench/litefs-rush-<run>.json. Needs root, /dev/fuse and .tools/bin/litefs.
"""

import argparse
import statistics
import sys

from app.enrollment.init_db import init_db
from bench.litefs_writes import LITEFS, LiteFSNode
from bench.run import Rush, bench_cluster, paired_rush_arguments, report_pairs
from harness.cluster import Cluster
from harness.db import restore_rows
from harness.procs import cpu_seconds

SIDES = (("litefs", True), ("plain", False))
KEYS = ("ops_per_s", "p99_ms", "instances_cpu_us_per_op", "gateway_cpu_us_per_op",
        "litefs_cpu_us_per_op")  # fmt: skip


class RowsRush(Rush):
    """bench/run.py's rushes, the database put back by rows (on both sides alike)."""

    def restore(self) -> None:
        restore_rows(self.seed, self.cluster.enrollment.db)


class LitefsRush:
    """The rushes of both sides on one cluster and one LiteFS node."""

    def __init__(self, cluster: Cluster, node: LiteFSNode, args) -> None:
        self.cluster, self.node, self.args = cluster, node, args
        self.plain = cluster.enrollment.db
        self.mounted = node.mount / "enroll.db"
        self.rush = RowsRush(cluster, args)  # the students announced on the plain file
        init_db(self.mounted)  # made through the mount, as bin/multihost makes h1's
        restore_rows(self.rush.seed, self.mounted)

    def use(self, litefs: bool) -> None:
        """The instances restarted on one side's file."""
        enrollment = self.cluster.enrollment
        enrollment.stop()
        enrollment.db = self.mounted if litefs else self.plain
        env = enrollment.env
        for key in self.args.litefs_env:
            env.pop(key, None)
        env.pop("ENROLL_WRITER_LOCK_FILE", None)
        if litefs:
            env["ENROLL_WRITER_LOCK_FILE"] = str(enrollment.dir / "litefs-enroll.db.writer-lock")
            env |= self.args.litefs_env
        enrollment.start()

    def round(self, number: int, litefs: bool) -> dict:
        self.use(litefs)
        self.rush.resign()  # a run of many rounds outlasts the tokens signed at its start
        name = f"{'LiteFS mount' if litefs else 'plain file'}, pair {number}"
        before = cpu_seconds(pids=[self.node.proc.pid])
        row = self.rush.closed(name, self.args.clients, self.args.seconds)
        spent = cpu_seconds(pids=[self.node.proc.pid]) - before
        row["litefs_cpu_us_per_op"] = round(spent / max(row["operations"], 1) * 1e6)
        return row | {"litefs": litefs, "pair": number}


def compare(rows: list[dict]) -> dict:
    """Each side's medians over its rounds, LiteFS / plain of them, and each pair's ratio."""
    sides = {
        side: {key: statistics.median(r[key] for r in rows if r["litefs"] is on) for key in KEYS}
        for side, on in SIDES
    }
    pairs = []
    for number in sorted({r["pair"] for r in rows}):
        mine = {r["litefs"]: r["ops_per_s"] for r in rows if r["pair"] == number}
        pairs.append(round(mine[True] / mine[False], 3))
    plain, litefs = sides["plain"], sides["litefs"]
    ratios = {
        key: round(litefs[key] / plain[key], 3) if plain[key] else None
        for key in ("ops_per_s", "instances_cpu_us_per_op", "gateway_cpu_us_per_op")
    }
    return {
        **sides,
        "ratio_litefs_to_plain": ratios,
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
    }


def table(results: dict) -> str:
    lines = [f"{'rush':24} {'ops/s':>7} {'p99 ms':>7} {'inst µs/op':>10} {'litefs µs/op':>12}"
             "  answers"]  # fmt: skip
    for r in results["rows"]:
        lines.append(
            f"{r['name']:24} {r['ops_per_s']:>7} {r['p99_ms']:>7}"
            f" {r['instances_cpu_us_per_op']:>10} {r['litefs_cpu_us_per_op']:>12}  {r['statuses']}"
        )
    litefs, plain, ratio = results["litefs"], results["plain"], results["ratio_litefs_to_plain"]
    env = " ".join(f"{k}={v}" for k, v in results["args"]["litefs_env"].items())
    lines += [
        f"medians of {len(results['pair_ratios'])} pairs: LiteFS {litefs['ops_per_s']} ops/s"
        f"{f' ({env})' if env else ''}, plain file {plain['ops_per_s']} ops/s: LiteFS / plain"
        f" {ratio['ops_per_s']} (pairs {', '.join(map(str, results['pair_ratios']))}; median of"
        f" pairs {results['median_pair_ratio']}; target: at least 0.60)",
        f"p99: LiteFS {litefs['p99_ms']} ms, plain {plain['p99_ms']} ms; CPU per operation:"
        f" instances {litefs['instances_cpu_us_per_op']} / {plain['instances_cpu_us_per_op']} µs,"
        f" gateway {litefs['gateway_cpu_us_per_op']} / {plain['gateway_cpu_us_per_op']} µs,"
        f" LiteFS process {litefs['litefs_cpu_us_per_op']} µs",
        f"reasons this run fails: {'; '.join(results['failures']) or 'none'}",
    ]
    return "\n".join(lines)


def setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("ENROLL_"):
        raise argparse.ArgumentTypeError(f"{text!r}: ENROLL_NAME=value")
    return key, value


def settings_option(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A repeatable `flag ENROLL_NAME=VALUE`, parsed into a list of (name, value)."""
    parser.add_argument(
        flag, type=setting, action="append", default=[], metavar="ENROLL_NAME=VALUE", help=help
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    paired_rush_arguments(p, "LiteFS and plain")
    settings_option(p, "--litefs-env", "a setting of the LiteFS side's instances only (repeatable)")
    args = p.parse_args(argv)
    args.litefs_env = dict(args.litefs_env)
    args.new_students = False  # bench/run.py's Rush: the students' accounts announced first
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not LITEFS.exists():
        p.error(f"{LITEFS} is missing: ./bin/start or ./bin/test builds it")

    run, cluster = bench_cluster()
    results: dict = {"run": run, "args": vars(args)}
    node = None
    rows: list[dict] = []
    try:
        cluster.start()
        node = LiteFSNode(cluster.var / "litefs-enroll")
        bench = LitefsRush(cluster, node, args)
        for number in range(1, args.rounds + 1):
            # LITEFS, PLAIN, PLAIN, LITEFS, ...: which side goes first alternates.
            for litefs in (True, False) if number % 2 else (False, True):
                rows.append(bench.round(number, litefs))
                print(f"{rows[-1]['name']}: {rows[-1]['ops_per_s']} ops/s", flush=True)
    finally:
        cluster.close()  # the instances first: they hold the mount's database open
        if node is not None:
            node.close()
    results["rows"] = rows
    results |= compare(rows)
    return report_pairs(results, bench.rush, [], "litefs-rush", table)


if __name__ == "__main__":
    sys.exit(main())
