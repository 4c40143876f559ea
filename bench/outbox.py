"""What the notifications outbox costs the registration-day rush, and how late its mail is
(issue 27's closing note): `python -m bench.outbox [--rounds 3]`.

It starts the cluster as `./bin/bench` does (bench/run.py), with Mailpit and the notifier beside
it (harness/mail.py, the notifier at its own default poll and backoff, as ./bin/start runs it),
then runs closed-loop rushes (bench/run.py's mix, clients and students) with the outbox on and off
in turns: ON, OFF, OFF, ON, ... for --rounds pairs, the three enrollment instances restarted
before each rush with ENROLL_NOTIFICATIONS=1 or 0, each rush from the same fresh catalog. Which
side goes first alternates, as bench/run.py's Idempotency-Key pairs do, so both meet the same
noise and neither always runs on the warmer database.

Each side: operations/s and the enrollment instances' CPU per operation (medians over its rounds),
and ON / OFF. Each ON round: the delay of each notification the rush wrote, from its created_at
(in the change's transaction) to its delivered_at (the notifier marks it once Mailpit answered
250), p50/p99/max, once all are delivered (waited for, at most --drain-seconds after the rush);
how many were delivered, and that Mailpit holds exactly that many messages, one per Message-ID;
and the CPU the notifier and Mailpit spent on them, per rush operation. Each OFF round must have
written no notification.

The bench's students get auth accounts (inserted on the LiteFS primary, no password: nobody signs
in with them), so the notifier finds their addresses there as it does a real student's.

The run fails (exit status 1), naming why, as bench/run.py's does (a broken SPEC §2 invariant, a
5xx, a cut connection, a refusal, on every rush), and also on a notification not delivered in
time, a Mailpit count other than the delivered count, a Message-ID twice, or an OFF round that
wrote notifications. It prints a table and writes var/bench/outbox-<run>.json.
"""

import argparse
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from app.notifier.settings import Settings as NotifierSettings
from bench.run import Rush, bench_cluster, paired_rush_arguments, report_pairs
from bench.rush import percentile
from harness.auth_cluster import wait_for
from harness.cluster import Cluster
from harness.mail import MailStack
from harness.procs import cpu_seconds

# The notifier as ./bin/start runs it: its own defaults, not MailStack's short test waits.
NOTIFIER_DEFAULTS = {
    f"NOTIFIER_{name.upper()}": str(NotifierSettings.model_fields[name].default)
    for name in (
        "poll_seconds",
        "backoff_first_seconds",
        "backoff_max_seconds",
        "cpu_priority",
        "defer_above_cpu_pressure",
        "max_defer_seconds",
    )
}
SIDES = (("on", True), ("off", False))


def give_students_accounts(cluster: Cluster, user_ids: range) -> None:
    """An auth account for each bench student (username bench<id>, the default address), in one
    transaction on the LiteFS primary, replicated before this returns. No password hash: the
    bench signs their tokens itself (bench/run.py `Rush`), and nobody signs in as them."""
    rows = [(u, f"bench{u}", "!", "Bench", str(u)) for u in user_ids]
    conn = sqlite3.connect(cluster.auth.primary.database, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO users (id, username, password_hash, first_name, last_name)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO user_roles (user_id, role) VALUES (?, 'student')", [(u,) for u in user_ids]
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    caught_up = wait_for(cluster.auth.replicas_caught_up, 30, interval=0.05)
    assert caught_up is not None, "the auth replicas did not catch up with the bench's accounts"


def outbox_rows(db: Path, after: int, *, undelivered: bool = False) -> list[sqlite3.Row]:
    """The notifications after id `after` (the ones the last rush wrote), or only those of them
    not delivered yet."""
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    which = " AND delivered_at IS NULL" if undelivered else ""
    try:
        return conn.execute(
            "SELECT id, created_at, delivered_at, attempts FROM notifications"
            f" WHERE id > ?{which} ORDER BY id",
            (after,),
        ).fetchall()
    finally:
        conn.close()


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class Outbox:
    """The rushes of both sides on one cluster, with its mail."""

    def __init__(self, cluster: Cluster, mail: MailStack, args) -> None:
        self.cluster, self.mail, self.args = cluster, mail, args
        self.rush = Rush(cluster, args)
        seeded = outbox_rows(self.rush.seed, 0)  # every rush starts from the seed's outbox
        self.seed_last = seeded[-1]["id"] if seeded else 0
        self.failures: list[str] = []  # the mail's; the rushes' are the Rush's

    def _mail_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the notifier, Mailpit, and the auth primary (which the
        notifier asks each recipient's address)."""
        mailpit = self.mail.mailpit.proc
        auth = self.cluster.auth.serving_pid(self.cluster.auth.primary.name)
        assert mailpit is not None and auth is not None
        return {
            "notifier": cpu_seconds(pids=[self.mail.notifier_pid()]),
            "mailpit": cpu_seconds(pids=[mailpit.pid]),  # bin/mailpit execs Mailpit
            "auth_primary": cpu_seconds(pids=[auth]),
        }

    def round(self, number: int, on: bool) -> dict:
        enrollment = self.cluster.enrollment
        enrollment.stop()
        enrollment.env["ENROLL_NOTIFICATIONS"] = "1" if on else "0"
        enrollment.start()
        self.rush.resign()  # a run of many rounds outlasts the tokens signed at its start
        self.mail.mailpit.delete_all()
        name = f"outbox {'on' if on else 'off'}, pair {number}"
        mail_cpu = [self._mail_cpu()]
        row = self.rush.closed(name, self.args.clients, self.args.seconds)
        rush_ended, ended = datetime.now(UTC), time.monotonic()  # the rush and its checks
        mail_cpu.append(self._mail_cpu())
        row["outbox"] = on
        drained = wait_for(
            lambda: not outbox_rows(enrollment.db, self.seed_last, undelivered=True),
            self.args.drain_seconds,
            interval=0.2,
        )
        mail_cpu.append(self._mail_cpu())
        operations = max(row["operations"], 1)
        for when, (before, after) in (("rush", mail_cpu[:2]), ("drain", mail_cpu[1:])):
            row[f"mail_cpu_us_per_op_{when}"] = {
                who: round((after[who] - before[who]) / operations * 1e6) for who in before
            }
        written = outbox_rows(enrollment.db, self.seed_last)
        row["notifications"] = len(written)
        if not on:
            if written:
                self.failures.append(f"{name}: {len(written)} notifications written")
            return row
        delivered = [r for r in written if r["delivered_at"] is not None]
        delays = [
            (_time(r["delivered_at"]) - _time(r["created_at"])).total_seconds() for r in delivered
        ]
        row["delivered"] = len(delivered)
        row["failed_attempts"] = sum(r["attempts"] for r in written)
        row["delay_ms"] = {
            "p50": round(percentile(delays, 50) * 1000, 1),
            "p99": round(percentile(delays, 99) * 1000, 1),
            "max": round(max(delays, default=0.0) * 1000, 1),
        }
        # How fast the notifier delivered while the rush ran, and alone after it.
        during = sum(1 for r in delivered if _time(r["delivered_at"]) <= rush_ended)
        last = max((_time(r["delivered_at"]) for r in delivered), default=rush_ended)
        after_s = (last - rush_ended).total_seconds()
        row["delivered_during_rush"] = during
        row["delivered_per_s_during_rush"] = round(during / row["seconds"], 1)
        row["delivered_per_s_after_rush"] = (
            round((len(delivered) - during) / after_s, 1) if after_s > 0 else None
        )
        row["drained_s_after_rush"] = None if drained is None else round(drained, 1)
        if len(delivered) < len(written):
            self.failures.append(
                f"{name}: {len(written) - len(delivered)} of {len(written)} notifications not"
                f" delivered {self.args.drain_seconds:.0f} s after the rush"
            )
        # Mailpit stores a message as it answers 250: it holds them all by now, or soon.
        wait_for(lambda: self.mail.mailpit.count() >= len(delivered), 10, interval=0.2)
        ids = [m["MessageID"] for m in self.mail.mailpit.messages()]
        row["mailpit_messages"], row["mailpit_message_ids"] = len(ids), len(set(ids))
        if not len(ids) == len(set(ids)) == len(delivered):
            self.failures.append(
                f"{name}: Mailpit holds {len(ids)} messages ({len(set(ids))} Message-IDs),"
                f" {len(delivered)} delivered"
            )
        row["mail_checked_s_after_rush"] = round(time.monotonic() - ended, 1)
        return row


def compare(rows: list[dict]) -> dict:
    """Each side's medians over its rounds, and ON / OFF: as bench/run.py `bench_key_cost`."""
    sides: dict = {}
    keys = ("ops_per_s", "instances_cpu_us_per_op", "gateway_cpu_us_per_op", "p99_ms")
    for side, on in SIDES:
        mine = [r for r in rows if r["outbox"] is on]
        sides[side] = {key: statistics.median(r[key] for r in mine) for key in keys}
        for when in ("rush", "drain"):
            sides[side][f"mail_cpu_us_per_op_{when}"] = {
                who: statistics.median(r[f"mail_cpu_us_per_op_{when}"][who] for r in mine)
                for who in mine[0][f"mail_cpu_us_per_op_{when}"]
            }
    ons = [r for r in rows if r["outbox"]]
    sides["on"] |= {
        "delay_ms_p50": statistics.median(r["delay_ms"]["p50"] for r in ons),
        "delay_ms_p99": statistics.median(r["delay_ms"]["p99"] for r in ons),
        "delay_ms_max": max(r["delay_ms"]["max"] for r in ons),
        "delivered_per_s_during_rush": statistics.median(
            r["delivered_per_s_during_rush"] for r in ons
        ),
        "delivered_per_s_after_rush": statistics.median(
            r["delivered_per_s_after_rush"] or 0.0 for r in ons
        ),
    }
    before, after = sides["off"], sides["on"]
    ratios = {
        key: round(after[key] / before[key], 3) if before[key] else None
        for key in ("ops_per_s", "instances_cpu_us_per_op", "gateway_cpu_us_per_op")
    }
    return {**sides, "ratio_on_to_off": ratios}


def table(results: dict) -> str:
    head = f"{'rush':24} {'ops/s':>7} {'p99 ms':>7} {'inst µs/op':>10} {'notes':>6}"
    lines = [head + f" {'delay p50/p99/max ms':>22} {'mailed':>7}  answers"]
    for r in results["rows"]:
        delay = "/".join(str(v) for v in r["delay_ms"].values()) if "delay_ms" in r else ""
        mailed = f"{r['delivered']}" if "delivered" in r else ""
        lines.append(
            f"{r['name']:24} {r['ops_per_s']:>7} {r['p99_ms']:>7}"
            f" {r['instances_cpu_us_per_op']:>10} {r['notifications']:>6} {delay:>22}"
            f" {mailed:>7}  {r['statuses']}"
        )
    on, off, ratio = results["on"], results["off"], results["ratio_on_to_off"]
    pairs = len(results["rows"]) // 2
    lines += [
        f"medians of {pairs} pairs: outbox on {on['ops_per_s']} ops/s, off {off['ops_per_s']}"
        f" ops/s: on / off {ratio['ops_per_s']} (target: at least 0.90)",
        f"enrollment instances' CPU per operation: on {on['instances_cpu_us_per_op']} µs, off"
        f" {off['instances_cpu_us_per_op']} µs (× {ratio['instances_cpu_us_per_op']}); gateway"
        f" × {ratio['gateway_cpu_us_per_op']}",
        *(
            f"CPU per rush operation of {who}, outbox on / off: during the rush"
            f" {on['mail_cpu_us_per_op_rush'][who]} / {off['mail_cpu_us_per_op_rush'][who]} µs;"
            f" delivering the rest after it {on['mail_cpu_us_per_op_drain'][who]} µs more"
            for who in on["mail_cpu_us_per_op_rush"]
        ),
        f"notification delay, created to delivered (medians over the ON rounds): p50"
        f" {on['delay_ms_p50']} ms, p99 {on['delay_ms_p99']} ms; max {on['delay_ms_max']} ms;"
        f" delivered {on['delivered_per_s_during_rush']}/s during the rush,"
        f" {on['delivered_per_s_after_rush']}/s after it",
        f"reasons this run fails: {'; '.join(results['failures']) or 'none'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    paired_rush_arguments(p, "outbox on and off")
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=120.0,
        help="how long after an ON rush its notifications may take to be delivered (the"
        " notifier needed up to 45 s on a loaded machine)",
    )
    args = p.parse_args(argv)
    args.new_students = False  # bench/run.py's Rush: the students' accounts announced first
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    run, cluster = bench_cluster()
    mail = MailStack(cluster, **NOTIFIER_DEFAULTS)
    mail.mailpit.env["MP_MAX_MESSAGES"] = "0"  # keep every message, to count them
    mail.mailpit.env["MAILPIT_CPU_PRIORITY"] = "idle"  # as bin/mailpit runs it by default
    results: dict = {"run": run, "args": vars(args), "notifier_env": NOTIFIER_DEFAULTS}
    try:
        cluster.start()
        give_students_accounts(cluster, range(100_000, 100_000 + args.students))
        mail.start()
        bench = Outbox(cluster, mail, args)
        rows = []
        for number in range(1, args.rounds + 1):
            # ON, OFF, OFF, ON, ...: which side goes first alternates (bench_key_cost's reason).
            for on in (True, False) if number % 2 else (False, True):
                rows.append(bench.round(number, on))
                print(f"{rows[-1]['name']}: {rows[-1]['ops_per_s']} ops/s", flush=True)
    finally:
        mail.stop()
        cluster.close()
    results["rows"] = rows
    results |= compare(rows)
    return report_pairs(results, bench.rush, bench.failures, "outbox", table)


if __name__ == "__main__":
    sys.exit(main())
