"""bin/backup takes online copies of both databases while the cluster serves (the enrollment one
through SQLite's backup API, the auth one through `litefs export`), and bin/restore brings them
back into a fresh var/.

- Taken with no write in flight and restored: every row of every table of both databases is the
  row the cluster held, every SPEC §2 invariant holds, and every user signs in on the restored
  LiteFS primary.
- Taken while students enroll, drop and leave, the registrar places and lifts holds and people
  register: each copy is one consistent moment. Every write answered before the backup started is
  in it; nothing is in it that was not yet sent when it ended; nothing is half applied (a drop
  without the promotion it made, a hold without its audit entry, an account without its role).
"""

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import http
from harness.auth_cluster import AuthCluster, wait_for
from harness.cluster import Cluster
from harness.invariants import table_rows, violations
from harness.procs import ROOT, free_port
from harness.seed import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "restored-and-well"
# Places move one way: waitlisted, then enrolled (promoted), then dropped.
PROGRESS = {"waitlisted": 0, "enrolled": 1, "dropped": 2}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def back_up(cluster: Cluster, into: Path) -> None:
    run(
        ["bin/backup", str(into)],
        {
            "VAR_DIR": str(cluster.var),
            "ENROLL_DATABASE": str(cluster.enrollment.db),
            "LITEFS_PRIMARY_PORT": str(cluster.auth.primary.litefs_port),
        },
    )


def register(cluster: Cluster, username: str) -> httpx.Response:
    body = {"username": username, "password": PASSWORD, "first_name": "Kept",
            "last_name": "User"}  # fmt: skip
    return http.post(cluster.auth_gateway.url + "/auth_api/register", json=body, timeout=30)


def test_a_backup_taken_while_serving_restores_into_a_fresh_var(cluster: Cluster, tmp_path):
    registered = []
    for n in range(3):
        reply = register(cluster, f"kept{n}")
        assert reply.status_code == 201, reply.text
        registered.append(reply.json())
    enroll = cluster.enroll_gateway.url + "/enroll_api"
    for user in registered:
        token = cluster.login(user["username"], PASSWORD)["access_token"]
        reply = http.post(
            f"{enroll}/users/{user['id']}/enrollments",
            json={"section_id": 4},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 201, reply.text
    # (the replicas have the new users too, so no later read races the backup)
    assert wait_for(lambda: all(cluster.login(u["username"], PASSWORD) for u in registered), 5)

    backup = tmp_path / "backup"
    back_up(cluster, backup)
    held = {
        "enroll": table_rows(cluster.enrollment.db),
        "auth": table_rows(cluster.auth.primary.database),
    }

    fresh = tmp_path / "fresh"
    ports = {"AUTH_PRIMARY_PORT": str(free_port()), "LITEFS_PRIMARY_PORT": str(free_port())}
    run(["bin/restore", str(backup), "--yes"], {"VAR_DIR": str(fresh), **ports})

    restored_db = fresh / "enroll" / "enroll.db"
    assert not violations(restored_db)
    assert sum(len(rows) for rows in held["enroll"].values()) > 100  # the seed and more
    assert table_rows(restored_db) == held["enroll"]
    restored = AuthCluster.create(fresh)  # keeps the key bin/restore made
    try:
        restored.start("primary")
        assert table_rows(restored.primary.database) == held["auth"]
        seed = json.loads((ROOT / "share" / "seed" / "people.json").read_text())
        people = [(p["username"], DEMO_PASSWORD) for p in seed]
        people += [(u["username"], PASSWORD) for u in registered]
        for username, password in people:
            reply = http.post(
                restored.primary.url + "/login",
                json={"username": username, "password": password},
                timeout=30,
            )
            assert reply.status_code == 200, (username, reply.text)
    finally:
        restored.close()


@dataclass
class Write:
    what: str  # enroll, drop, leave, hold, lift, register
    sent: float
    answered: float
    status: int
    body: dict


class Writers:
    """Threads writing through the gateways until stopped, each logging every answered write."""

    def __init__(self) -> None:
        self.log: list[Write] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def add(self, step: Callable[[httpx.Client], None]) -> None:
        def loop() -> None:
            with httpx.Client(timeout=30) as client:
                while not self.stop.is_set():
                    step(client)

        self.threads.append(threading.Thread(target=loop))

    def send(self, client: httpx.Client, what: str, method: str, url: str, **kw) -> Write:
        sent = time.monotonic()
        reply = client.request(method, url, **kw)
        body = reply.json() if reply.content else {}
        write = Write(what, sent, time.monotonic(), reply.status_code, body)
        self.log.append(write)
        return write

    def __enter__(self) -> "Writers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def answered_rows(write: Write) -> list[dict]:
    """The enrollment rows an answer showed: the place taken, or the one given up and those
    promoted into the seat it freed."""
    if write.what == "enroll" and write.status == 201:
        return [write.body]
    if write.what in ("drop", "leave") and write.status == 200:
        return [write.body["dropped"], *write.body["promoted"]]
    return []


def rows_by_id(db: Path, sql: str) -> dict[int, dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {row["id"]: dict(row) for row in conn.execute(sql)}
    finally:
        conn.close()


def test_a_backup_taken_during_writes_is_one_consistent_moment(cluster: Cluster, tmp_path):
    enroll = cluster.enroll_gateway.url + "/enroll_api"
    registrar = {"Authorization": f"Bearer {cluster.token(1, 'rhenderson', 'registrar')}"}
    body = {"course_id": 4, "section_number": 82, "instructor_id": 3, "capacity": 2,
            "waitlist_capacity": 8}  # fmt: skip
    section = http.post(f"{enroll}/sections", json=body, headers=registrar).json()["id"]
    writers = Writers()

    def student(user_id: int) -> Callable[[httpx.Client], None]:
        headers = {"Authorization": f"Bearer {cluster.token(user_id, f's{user_id}', 'student')}"}
        mine = f"{enroll}/users/{user_id}"

        def step(client: httpx.Client) -> None:
            took = writers.send(client, "enroll", "POST", f"{mine}/enrollments",
                                json={"section_id": section}, headers=headers)  # fmt: skip
            if took.status != 201:
                return
            if took.body["status"] == "waitlisted":
                left = writers.send(client, "leave", "DELETE", f"{mine}/waitlist/{section}",
                                    headers=headers)  # fmt: skip
                if left.status != 404:  # 404: promoted meanwhile, so it is a drop
                    return
            writers.send(client, "drop", "DELETE", f"{mine}/enrollments/{section}",
                         headers=headers)  # fmt: skip

        return step

    def holds(client: httpx.Client) -> None:  # on student 30 (seed): a hold and its audit entry
        placed = writers.send(client, "hold", "POST", f"{enroll}/users/30/holds",
                              json={"reason": "backup test"}, headers=registrar)  # fmt: skip
        writers.send(client, "lift", "DELETE", f"{enroll}/users/30/holds/{placed.body['id']}",
                     headers=registrar)  # fmt: skip

    accounts = iter(range(10**6))

    def registrations(client: httpx.Client) -> None:
        body = {"username": f"during{next(accounts)}", "password": PASSWORD,
                "first_name": "During", "last_name": "Backup"}  # fmt: skip
        writers.send(client, "register", "POST", cluster.auth_gateway.url + "/auth_api/register",
                     json=body)  # fmt: skip

    for user_id in range(8500, 8506):
        writers.add(student(user_id))
    writers.add(holds)
    writers.add(registrations)
    backup = tmp_path / "backup"
    with writers:
        time.sleep(1.0)
        began = time.monotonic()
        back_up(cluster, backup)
        ended = time.monotonic()
        time.sleep(0.5)

    log = writers.log
    statuses = sorted({(w.what, w.status) for w in log})
    print(f"{len(log)} writes, {sum(began < w.answered < ended for w in log)} answered while"
          f" bin/backup ran ({ended - began:.2f} s): {statuses}")  # fmt: skip
    assert {s for _, s in statuses} <= {200, 201, 404, 409}, statuses
    assert sum(began < w.answered < ended for w in log) >= 5, "no writes in flight"
    before = [w for w in log if w.answered < began and w.status in (200, 201)]
    copy, live = backup / "enroll.db", cluster.enrollment.db
    assert violations(copy, [w.body for w in before if w.what == "enroll"]) == []

    # Enrollments: rows are added in id order, one write at a time, so the copy's rows of the
    # section are exactly the live ones up to its last; each in a state no further on than now
    # and at least as far as its last answer before the backup.
    in_section = f"SELECT * FROM enrollments WHERE section_id = {section}"
    copied, now = rows_by_id(copy, in_section), rows_by_id(live, in_section)
    assert copied, "the backup has none of the writes"
    assert sorted(copied) == [i for i in sorted(now) if i <= max(copied)]
    assert len(now) > len(copied), "the backup has every write: none was in flight"
    for i, row in copied.items():
        assert PROGRESS[row["status"]] <= PROGRESS[now[i]["status"]], (row, now[i])
    for w in before:
        for row in answered_rows(w):
            assert row["id"] in copied, row
            assert PROGRESS[copied[row["id"]]["status"]] >= PROGRESS[row["status"]], row
    sent_after = [w.body["id"] for w in log if w.sent > ended and w.what == "enroll"
                  and w.status == 201]  # fmt: skip
    assert not set(sent_after) & set(copied)
    # A drop and the promotion it made land together.
    for w in log:
        if w.what == "drop" and w.status == 200:
            dropped = copied.get(w.body["dropped"]["id"], {}).get("status") == "dropped"
            for promoted in w.body["promoted"]:
                seated = copied.get(promoted["id"], {}).get("status") in ("enrolled", "dropped")
                assert dropped == seated, (w.body, copied.get(promoted["id"]))

    # Holds: each with its audit entry (one transaction), each answered before the backup there.
    holds_copied = rows_by_id(copy, "SELECT * FROM holds WHERE user_id = 30")
    audit = rows_by_id(copy, "SELECT * FROM audit_log WHERE user_id = 30")
    actions = [a["action"] for a in audit.values()]
    assert actions.count("hold.place") == len(holds_copied)
    assert actions.count("hold.lift") == sum(
        h["lifted_at"] is not None for h in holds_copied.values()
    )
    for w in before:
        if w.what in ("hold", "lift"):
            assert (w.body["id"] in holds_copied
                    and (w.what == "hold" or holds_copied[w.body["id"]]["lifted_at"]))  # fmt: skip

    # Accounts: each answered before the backup is there, none without its role.
    users = rows_by_id(backup / "auth.db", "SELECT * FROM users")
    roles = rows_by_id(backup / "auth.db", "SELECT user_id AS id FROM user_roles")
    assert set(users) == set(roles)
    names = {u["username"] for u in users.values()}
    assert {w.body["username"] for w in before if w.what == "register"} <= names
    later = {w.body["username"] for w in log if w.what == "register" and w.sent > ended}
    assert not later & names
