"""Losing the primary host (issue 29): h1 killed in the middle of a rush, `promote`, h1 back as a
replica; in each acknowledgement mode (ENROLL_ACK, docs/multihost.md), counting the seats
answered 201 that the new primary does not have. Real processes only, as test_three_hosts.py.

In the default run as root (as CI runs it); alone: `./bin/test -m multihost`."""

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.auth_cluster import wait_for
from harness.loadclient import Connection
from harness.multihost import HOSTS, LITEFS_PORTS, Multihost, MultihostError, url
from tests.multihost.test_three_hosts import API, bearer, hosts_up, signer

pytestmark = [pytest.mark.multihost, pytest.mark.e2e]

PREFIX = "mhf"  # neither bin/multihost's "mh" nor test_three_hosts.py's "mht"
CLIENTS = 12  # requests in flight at once, spread over the three gateways
RUSH_BEFORE_KILL = 2.0  # seconds
RUSH_AFTER_KILL = 2.5
REQUEST_TIMEOUT = 5.0
WRITES_STOP_WITHIN = 2.0  # seconds, SPEC §7: a write with the primary gone answers 503 by then
WRITES_RESUME_WITHIN = 10.0  # seconds from `promote` to a write answered 201
# What a request in flight through a host as its processes are killed gets: no answer, or its
# gateway's 500 `backend_failed` (the instance died a moment before the gateway did).
IN_FLIGHT_AT_A_KILL = {0, 500}


@pytest.fixture(params=["local", "replica"])
def hosts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Multihost]:
    yield from hosts_up(tmp_path, PREFIX, ack=request.param)


@dataclass
class Answer:
    host: str
    student: int
    status: int  # 0: no answer (connection refused, reset, timed out)
    code: str | None
    started: float
    seconds: float


class Rush:
    """Students enrolling in one section through the `gateways` (those of the three hosts by
    default) in turn, CLIENTS at a time, from `client`'s network, until stopped; every answer
    kept."""

    def __init__(
        self,
        hosts: Multihost,
        section_id: int,
        *,
        client: str = "h3",
        gateways: tuple[str, ...] = HOSTS,
        first_student: int = 20000,
    ) -> None:
        self.hosts = hosts
        self.section_id = section_id
        self.client = client
        self.gateways = gateways
        self.token = signer(hosts)
        self.answers: list[Answer] = []
        self.stopping = threading.Event()
        self.next_student = first_student
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Rush":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(30)

    def _run(self) -> None:
        with self.hosts.in_host(self.client):
            asyncio.run(self._clients())

    async def _clients(self) -> None:
        gateways = self.gateways
        await asyncio.gather(*(self._client(gateways[i % len(gateways)]) for i in range(CLIENTS)))

    async def _client(self, host: str) -> None:
        connection = Connection(self.hosts.enroll_gateway(host))
        while not self.stopping.is_set():
            student = self.next_student
            self.next_student += 1
            headers = bearer(self.token(student, f"rush{student}", "student"))
            path = f"{API}/users/{student}/enrollments"
            started = time.monotonic()
            status, code = 0, None
            try:
                reply = await asyncio.wait_for(
                    connection.request("POST", path, headers, {"section_id": self.section_id}),
                    REQUEST_TIMEOUT,
                )
                status = reply.status
                if status >= 400:
                    code = reply.json().get("code")
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                await connection.close()
            self.answers.append(
                Answer(host, student, status, code, started, time.monotonic() - started)
            )
            if status in (0, 503):
                await asyncio.sleep(0.05)
        await connection.close()


def enrolled_on(hosts: Multihost, host: str, section_id: int) -> set[int]:
    """The students enrolled in the section in `host`'s copy of the enrollment database."""
    database = hosts.database(host, "enroll.db")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT user_id FROM enrollments WHERE section_id = ? AND status = 'enrolled'",
            (section_id,),
        ).fetchall()
    return {user_id for (user_id,) in rows}


def litefs_info(hosts: Multihost, host: str, database: str) -> dict:
    with hosts.in_host(host):
        return httpx.get(url(host, LITEFS_PORTS[database]) + "/info", timeout=2).json()


def new_section(hosts: Multihost, number: int) -> int:
    """A section with room for every student of a rush, made through h3's gateway."""
    registrar = bearer(signer(hosts)(1, "rhenderson", "registrar"))
    section = {"course_id": 4, "section_number": number, "instructor_id": 3, "capacity": 5000}
    with hosts.in_host("h3"):
        created = httpx.post(
            hosts.enroll_gateway("h3") + API + "/sections", headers=registrar, json=section
        )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def rejoins_as_replica(hosts: Multihost, old: str, primary: str, section_id: int) -> float:
    """`old` restarted: its LiteFS nodes are replicas naming `primary`, and its copy becomes the
    primary's (even where it held transactions the primary never had). Seconds to restart."""
    restarted = hosts.restart(old)
    for database in LITEFS_PORTS:
        info = litefs_info(hosts, old, database)
        assert info["isPrimary"] is False, info
        assert info["primary"]["hostname"] == primary, info
    assert wait_for(lambda: hosts.caught_up("enroll.db"), 10, interval=0.05) is not None
    assert wait_for(lambda: hosts.caught_up("auth.db"), 10, interval=0.05) is not None
    assert enrolled_on(hosts, old, section_id) == enrolled_on(hosts, primary, section_id)
    assert hosts.status()["primary"] == {"enroll.db": primary, "auth.db": primary}
    return restarted


def test_primary_killed_mid_rush_then_promote(hosts: Multihost):
    """h1 killed in the middle of a rush: reads go on on h2 and h3, writes answer 503
    primary_unavailable within 2 s; promote (h2, or the replica that is ahead if h2 is refused
    as behind); writes resume within 10 s; h1 restarted rejoins as a replica and catches up.
    The seats answered 201 that the new primary lacks are counted: none with ENROLL_ACK=replica."""
    token = signer(hosts)
    registrar = bearer(token(1, "rhenderson", "registrar"))
    section_id = new_section(hosts, 72)

    with Rush(hosts, section_id) as rush:
        time.sleep(RUSH_BEFORE_KILL)
        hosts.kill("h1")
        killed = time.monotonic()
        time.sleep(RUSH_AFTER_KILL)
        with hosts.in_host("h3"):
            for host in ("h2", "h3"):
                read = httpx.get(
                    f"{hosts.enroll_gateway(host)}{API}/sections/{section_id}", headers=registrar
                )
                assert read.status_code == 200, (host, read.text)
    answers = rush.answers
    before = [a for a in answers if a.started < killed]
    after = [a for a in answers if a.started > killed + 0.1 and a.host != "h1"]
    granted = [a for a in answers if a.status == 201]
    assert len([a for a in before if a.status == 201]) >= 20, "the rush hardly ran before the kill"
    assert after, "no write was tried on h2 or h3 with h1 down"
    assert {(a.status, a.code) for a in after} == {(503, "primary_unavailable")}
    slowest = max(a.seconds for a in after)
    assert slowest < WRITES_STOP_WITHIN, slowest

    students = iter(range(40000, 50000))

    def write_answers(host: str) -> bool:
        student = next(students)
        with hosts.in_host("h3"):
            try:
                reply = httpx.post(
                    f"{hosts.enroll_gateway(host)}{API}/users/{student}/enrollments",
                    headers=bearer(token(student, f"after{student}", "student")),
                    json={"section_id": section_id},
                    timeout=REQUEST_TIMEOUT,
                )
            except httpx.HTTPError:
                return False
        return reply.status_code == 201

    first_write: list[float] = []
    promote_done = threading.Event()

    def writer() -> None:  # a client trying h2's and h3's gateways in turn, from promote on
        for i in range(10_000):
            if write_answers(("h2", "h3")[i % 2]):
                first_write.append(time.monotonic())
                return
            if promote_done.wait(0.2) and i > 20:
                return

    promoting = time.monotonic()
    trying = threading.Thread(target=writer, daemon=True)
    trying.start()
    promoted, refused = "h2", []
    for candidate, force in (("h2", False), ("h3", False), ("h2", True)):
        try:
            report = hosts.promote(candidate, force=force)
        except MultihostError as exc:
            assert "behind" in str(exc), exc
            refused.append(candidate)
            continue
        promoted = candidate
        break
    promote_seconds = time.monotonic() - promoting
    promote_done.set()
    trying.join(30)
    if hosts.ack == "replica":
        assert not report["forced"], report
    assert first_write, "no write answered 201 after promote"
    resumed = first_write[0] - promoting
    assert resumed < WRITES_RESUME_WITHIN, (resumed, report)
    for host in HOSTS:  # every gateway takes writes again, h1's aside (it is down)
        assert host == "h1" or write_answers(host), host

    kept = enrolled_on(hosts, promoted, section_id)
    lost = sorted(a.student for a in granted if a.student not in kept)
    print(
        f"multihost failover (ENROLL_ACK={hosts.ack}): {len(granted)} seats answered 201, "
        f"{len(before)} writes tried before the kill; with h1 down writes answered 503 within "
        f"{slowest:.2f} s; promote {promoted} (refused: {refused or 'none'}) in "
        f"{promote_seconds:.1f} s, writes answered again {resumed:.1f} s after it began; "
        f"seats answered 201 and lost: {len(lost)} {lost[:10]}"
    )
    if hosts.ack == "replica":
        assert lost == []

    restarted = rejoins_as_replica(hosts, "h1", promoted, section_id)
    print(f"multihost failover: h1 back as a replica of {promoted} in {restarted:.1f} s")


def test_primary_cut_off_then_killed(hosts: Multihost):
    """The case that loses answered writes in ENROLL_ACK=local: h1 goes on answering its own
    clients (on its own network) while cut off from the replicas, then dies. The replicas agree
    and nothing they saw says they are behind, so `promote h2` goes ahead, and every seat h1
    answered 201 meanwhile is gone. With ENROLL_ACK=replica those writes answer 503
    not_replicated instead, and no seat answered 201 is lost. h1 then rejoins as a replica,
    its copy replaced by the new primary's."""
    section_id = new_section(hosts, 73)
    with Rush(hosts, section_id, client="h1", gateways=("h1",), first_student=30000) as rush:
        time.sleep(1.0)
        hosts.cut_off("h1")
        cut = time.monotonic()
        time.sleep(RUSH_AFTER_KILL)
        hosts.kill("h1")
    hosts.cut_off("h1", cut=False)
    answers = rush.answers
    granted = [a for a in answers if a.status == 201]
    while_cut = [a for a in answers if a.started + a.seconds > cut + 0.1]  # answered after
    report = hosts.promote("h2")
    assert not report["forced"], report
    kept = enrolled_on(hosts, "h2", section_id)
    lost = sorted(a.student for a in granted if a.student not in kept)
    outcomes = sorted({(a.status, a.code) for a in while_cut}, key=str)
    print(
        f"multihost, h1 cut off then killed (ENROLL_ACK={hosts.ack}): {len(granted)} seats "
        f"answered 201, {len(while_cut)} writes answered while cut off: {outcomes}; "
        f"promote h2 in {report['seconds']} s; seats answered 201 and lost: {len(lost)}"
    )
    assert len([a for a in granted if a.started < cut]) >= 10, "the rush hardly ran"
    if hosts.ack == "replica":
        assert lost == []
        assert (503, "not_replicated") in outcomes, outcomes
        assert {a.status for a in while_cut} <= {201, 503, *IN_FLIGHT_AT_A_KILL}, outcomes
        assert {a.code for a in while_cut if a.status == 500} <= {"backend_failed"}, outcomes
    else:
        assert lost, "h1 answered no write while cut off"
    restarted = rejoins_as_replica(hosts, "h1", "h2", section_id)
    print(f"multihost: h1 back as a replica of h2 in {restarted:.1f} s")


@pytest.fixture
def default_hosts(tmp_path: Path) -> Iterator[Multihost]:
    """The three hosts as `bin/multihost up` starts them (ENROLL_ACK=replica)."""
    yield from hosts_up(tmp_path, PREFIX)


def test_promote_refuses_a_replica_behind(default_hosts: Multihost):
    """h2 cut off while h3's clients enroll (relayed to h1, held by h3), then h1 killed and h2
    plugged back in: h2 lacks what h1 acknowledged through h3, so `promote h2` is refused and
    nothing changes; `promote h3` keeps every seat answered 201, and h2, started again as h3's
    replica, catches up."""
    hosts = default_hosts
    section_id = new_section(hosts, 74)
    hosts.cut_off("h2")
    with Rush(hosts, section_id, client="h3", gateways=("h3",), first_student=60000) as rush:
        time.sleep(1.5)
    hosts.kill("h1")
    hosts.cut_off("h2", cut=False)
    granted = [a for a in rush.answers if a.status == 201]
    assert len(granted) >= 10, "the rush hardly ran"

    with pytest.raises(MultihostError, match="behind") as refused:
        hosts.promote("h2")
    assert hosts.primary == "h1"
    assert hosts.promote("h3")["forced"] is False
    kept = enrolled_on(hosts, "h3", section_id)
    assert [a.student for a in granted if a.student not in kept] == []
    assert wait_for(lambda: hosts.caught_up("enroll.db"), 10, interval=0.05) is not None
    assert enrolled_on(hosts, "h2", section_id) == kept
    print(f"multihost: promote h2 refused ({refused.value}); h3 promoted, {len(granted)} kept")


class Registrations:
    """A registrar registering new students through the `gateways` (h1's and h3's auth gateways,
    in turn) from h3's network, one request at a time in each of two threads, until stopped:
    every answer kept as (username, status), status 0 for no answer."""

    def __init__(self, hosts: Multihost, gateways: tuple[str, ...] = ("h1", "h3")) -> None:
        self.hosts = hosts
        self.gateways = gateways
        self.registrar = bearer(signer(hosts)(1, "rhenderson", "registrar"))
        self.answers: list[tuple[str, int]] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(2)
        ]

    def __enter__(self) -> "Registrations":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, n: int) -> None:
        with self.hosts.in_host("h3"), httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            sent = 0
            while not self.stopping.is_set():
                username = f"switch{n}x{sent}"
                gateway = self.hosts.auth_gateway(self.gateways[sent % len(self.gateways)])
                sent += 1
                body = {"username": username, "password": "switchover pass 11",
                        "first_name": "Planned", "last_name": "Switchover"}  # fmt: skip
                try:
                    status = client.post(
                        gateway + "/auth_api/register", headers=self.registrar, json=body
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((username, status))
                if status in (0, 503):
                    time.sleep(0.05)


def test_a_planned_switchover_keeps_every_registration_and_seat(default_hosts: Multihost):
    """`promote h2` with h1 alive, while a registrar registers students through h1's and h3's
    auth gateways and students enroll through all three hosts: every registration and every seat
    answered 201 is in h2's copies afterwards, and h1 serves on as h2's replica. (h1's auth
    instance is frozen before promote reads the position h2 must hold: one left running could
    answer a registration after that, which h2 would never get.) First, with h2 cut off and so
    behind, `promote h2` is refused, and h1 serves writes again as the primary."""
    hosts = default_hosts
    section_id = new_section(hosts, 75)

    def enroll_through_h1(student: int) -> int:
        with hosts.in_host("h1"):
            return httpx.post(
                f"{hosts.enroll_gateway('h1')}{API}/users/{student}/enrollments",
                headers=bearer(signer(hosts)(student, f"planned{student}", "student")),
                json={"section_id": section_id},
                timeout=REQUEST_TIMEOUT,
            ).status_code

    hosts.cut_off("h2")
    assert enroll_through_h1(69998) == 201  # held by h3, not by h2
    with pytest.raises(MultihostError, match="behind"):
        hosts.promote("h2")
    assert hosts.primary == "h1"
    assert wait_for(lambda: enroll_through_h1(69999) == 201, 10, interval=0.2)
    # h2 plugged back in and started again: its stream from h1's LiteFS ended unseen while it
    # was cut off (h1's restart), and TCP would take its keepalive's time to tell it so.
    hosts.cut_off("h2", cut=False)
    hosts.restart("h2")
    assert wait_for(lambda: hosts.caught_up("enroll.db"), 10, interval=0.05) is not None

    with (
        Registrations(hosts) as registrations,
        Rush(hosts, section_id, first_student=70000) as rush,
    ):
        time.sleep(1.5)
        promoted = hosts.promote("h2")
        time.sleep(1.5)
    assert promoted["old_primary_was"] == "alive" and promoted["forced"] is False, promoted
    registered = [username for username, status in registrations.answers if status == 201]
    seats = [a.student for a in rush.answers if a.status == 201]
    assert len(registered) >= 10 and len(seats) >= 10, "the traffic hardly ran"
    # Nothing answered but a 201, a 503 while the primary moved, or what a request in flight on
    # h1 gets as it is stopped.
    assert {status for _, status in registrations.answers} <= {201, 503, *IN_FLIGHT_AT_A_KILL}
    assert {a.status for a in rush.answers} <= {201, 503, *IN_FLIGHT_AT_A_KILL}
    assert {a.code for a in rush.answers if a.status == 500} <= {"backend_failed"}

    auth_copy = hosts.database("h2", "auth.db")
    with sqlite3.connect(f"file:{auth_copy}?mode=ro", uri=True) as db:
        held = {name for (name,) in db.execute("SELECT username FROM users")}
    assert [name for name in registered if name not in held] == []
    assert [s for s in seats if s not in enrolled_on(hosts, "h2", section_id)] == []
    assert hosts.status()["primary"] == {"enroll.db": "h2", "auth.db": "h2"}
    for database in LITEFS_PORTS:
        assert litefs_info(hosts, "h1", database)["isPrimary"] is False
    assert wait_for(lambda: hosts.caught_up("auth.db"), 10, interval=0.05) is not None
    print(
        f"multihost: planned switchover, writable after {promoted['writable_after_seconds']} s,"
        f" done in {promoted['seconds']} s: {len(registered)}"
        f" registrations and {len(seats)} seats answered 201, all on h2"
    )
