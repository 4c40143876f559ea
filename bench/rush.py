"""Registration-day rush: S students, K sections, enroll, drop, leave-waitlist and
list-my-sections against the enrollment service (through the gateway when there is one), then
every SPEC §2 invariant checked on the database. Two shapes of load: closed loop (C clients, each
sending its next request when the last is answered: throughput at saturation) and open loop
(requests arriving at a fixed rate: latency as students feel it)."""

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.loadclient import Connection

# Answers that mean the bench, not the service under load, went wrong (a token expired or refused,
# a body the service rejects, a limiter in the way): a run with any one of them fails, like one
# with a 5xx or a cut connection, since what it measured was not the rush it claims.
REFUSALS = frozenset({401, 403, 422, 429})


@dataclass
class Sample:
    op: str
    status: int | None  # None: the connection failed
    seconds: float
    at: float = 0.0  # when it was sent (open loop: due), seconds from the rush's start
    sent: float = 0.0  # time.monotonic() when it went out, and when it was answered or failed
    done: float = 0.0


@dataclass
class Student:
    user_id: int
    headers: dict[str, str]
    enrolled: set[int] = field(default_factory=set)
    waitlisted: set[int] = field(default_factory=set)
    # The body of every 201 to an enroll: each must be in the database (harness/invariants.py).
    acknowledged: list[dict] = field(default_factory=list)


def keyed(headers: dict[str, str], method: str, keys: bool) -> dict[str, str]:
    """The headers of one request: the student's, and on a write (with `keys`) an
    Idempotency-Key of its own, as the web app sends. The bench never sends a request again (a cut
    or a 5xx fails the run), so each request is one student action: a fresh key every time."""
    if not keys or method == "GET":
        return headers
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def failed(sample: Sample) -> str | None:
    """Why a sample fails a run (a cut connection, a 5xx, a refusal), or None."""
    if sample.status is None:
        return "connection failed"
    if sample.status >= 500 or sample.status in REFUSALS:
        return str(sample.status)
    return None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summarise(name: str, samples: list[Sample], seconds: float) -> dict:
    latencies = [s.seconds for s in samples]
    return {
        "name": name,
        "operations": len(samples),
        "seconds": round(seconds, 3),
        "ops_per_s": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "statuses": dict(sorted(Counter(str(s.status) for s in samples).items())),
        "by_op": dict(Counter(s.op for s in samples)),
        # Where in the rush the tail was (a start-up cost, a stall, or all along), and how much
        # got done each second.
        "ops_by_second": [n for _, n in sorted(Counter(int(s.at) for s in samples).items())],
        "p99_ms_by_second": [
            round(percentile([s.seconds for s in samples if int(s.at) == second], 99) * 1000, 1)
            for second in range(int(max((s.at for s in samples), default=0)) + 1)
        ],
    }


async def run_rush(
    urls: list[str],
    students: list[Student],
    section_ids: list[int],
    *,
    clients: int,
    seconds: float,
    max_operations: int,
    prefix: str = "",
    seed: int = 449,
    keys: bool = True,
) -> tuple[list[Sample], float]:
    """C clients, each a keep-alive connection to one of `urls` (round robin), each playing its
    share of the students until `seconds` pass or `max_operations` are done (bounded both ways).
    Every write carries an Idempotency-Key unless `keys` is false (`keyed`)."""
    rng = random.Random(seed)
    groups = [students[i::clients] for i in range(clients)]
    samples: list[Sample] = []
    deadline = time.monotonic() + seconds
    budget = [max_operations]

    async def client(index: int, mine: list[Student]) -> None:
        conn = Connection(urls[index % len(urls)])
        try:
            while mine and time.monotonic() < deadline and budget[0] > 0:
                budget[0] -= 1
                student = rng.choice(mine)
                op, method, path, body, apply = choose(student, section_ids, rng, prefix)
                started = time.monotonic()
                try:
                    headers = keyed(student.headers, method, keys)
                    reply = await conn.request(method, path, headers, body)
                    status: int | None = reply.status
                    apply(reply.status, reply.json() if reply.body else None)
                except (OSError, asyncio.IncompleteReadError):
                    status = None
                    await conn.close()
                ended = time.monotonic()
                samples.append(Sample(op, status, ended - started, started - began, started, ended))
        finally:
            await conn.close()

    began = time.monotonic()
    await asyncio.gather(*(client(i, g) for i, g in enumerate(groups)))
    return samples, time.monotonic() - began


async def run_open_loop(
    url: str,
    students: list[Student],
    section_ids: list[int],
    *,
    rate: float,
    seconds: float,
    prefix: str = "",
    seed: int = 449,
    connections: int = 400,
    keys: bool = True,
) -> tuple[list[Sample], float]:
    """Requests arrive at `rate` a second whatever the answers, as students do on registration
    day (wrk2's constant throughput, k6's constant-arrival-rate), for `seconds`. Each one's
    latency counts from the moment it was due, so a server that falls behind shows it in full
    (no coordinated omission). Like wrk2 (and k6's maxVUs), the client has a bounded number of
    keep-alive connections (`connections`, opened as needed): a request due while all are busy
    waits for one, and that wait counts in its latency. Unbounded, a moment's backlog made the
    client open a connection per waiting request, thousands, and the cost of opening them kept
    the backlog from ever draining. Bounded: rate x seconds requests, then the stragglers'
    answers. Every write carries an Idempotency-Key unless `keys` is false (`keyed`)."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    in_flight: set[asyncio.Task] = set()
    total = int(rate * seconds)

    async def borrow() -> Connection:
        nonlocal opened
        if idle.empty() and opened < connections:
            opened += 1
            return Connection(url)
        return await idle.get()

    async def one(due: float, student: Student) -> None:
        conn = await borrow()
        op, method, path, body, apply = choose(student, section_ids, rng, prefix)
        sent = time.monotonic()
        try:
            reply = await conn.request(method, path, keyed(student.headers, method, keys), body)
            status: int | None = reply.status
            apply(reply.status, reply.json() if reply.body else None)
            idle.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError):
            status = None
            await conn.close()
            idle.put_nowait(Connection(url))  # its place, opened when next used
        done = time.monotonic()
        samples.append(Sample(op, status, done - due, due - started, sent, done))

    started = time.monotonic()
    for i in range(total):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due, rng.choice(students)))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    while not idle.empty():
        await idle.get_nowait().close()
    return samples, time.monotonic() - started


def _forget(places: set[int], section: int) -> Callable[[int, object], None]:
    """What a drop or a leave does to the student's own record, once answered: the place is gone
    (200), or was already (404)."""

    def forget(status: int, _: object) -> None:
        if status in (200, 404):
            places.discard(section)

    return forget


def choose(
    student: Student, sections: list[int], rng: random.Random, prefix: str
) -> tuple[str, str, str, dict | None, Callable[[int, object], None]]:
    """The next thing a student does: mostly enroll, sometimes look, drop or give up waiting."""
    me = student.user_id
    roll = rng.random()
    if roll < 0.15 and student.enrolled:
        section = rng.choice(sorted(student.enrolled))
        gone = _forget(student.enrolled, section)
        return "drop", "DELETE", f"{prefix}/users/{me}/enrollments/{section}", None, gone
    if roll < 0.25 and student.waitlisted:
        section = rng.choice(sorted(student.waitlisted))
        gone = _forget(student.waitlisted, section)
        return "leave", "DELETE", f"{prefix}/users/{me}/waitlist/{section}", None, gone
    if roll < 0.45:

        def listed(status: int, body: object) -> None:
            if status == 200 and isinstance(body, list):
                seated = {s["id"] for s in body}
                student.waitlisted -= seated  # promoted since we last looked
                student.enrolled = seated

        return "list", "GET", f"{prefix}/users/{me}/sections?type=enrolled", None, listed
    section = rng.choice(sections)

    def enrolled(status: int, body: object) -> None:
        if status == 201 and isinstance(body, dict):
            (student.enrolled if body["status"] == "enrolled" else student.waitlisted).add(section)
            student.acknowledged.append(body)

    body = {"section_id": section}
    return "enroll", "POST", f"{prefix}/users/{me}/enrollments", body, enrolled
