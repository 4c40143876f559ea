"""What one request costs the enrollment app in CPU, in process, without sockets or other
processes competing for the cores:

    python -m bench.request_cost [--rounds 7] [--requests 2000]

On a machine shared with the rest of the cluster (and with other machines: this one is a VM),
throughput moves by a third between runs and a change of 5-10% of the instances' CPU cannot be
seen in it. Here the ASGI app of the enrollment service (the whole stack of middleware, routing,
dependencies, validation, the service and SQLite, everything but uvicorn's HTTP parsing) answers
the rush's requests called directly on one event loop: an enroll and a drop (each in its write
turn) and a student's section list, the same requests each round. Prints the best round's CPU
per request of each kind; run it at two revisions (git stash, or a worktree) to compare.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import uvloop

from app.common.identity import gateway_headers
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings
from harness.enroll_cluster import write_secret

STUDENTS = range(60_000, 60_400)


class AsgiCaller:
    """Calls the ASGI app as uvicorn would, checks each answer's status, returns its body."""

    def __init__(self, app, secret: str) -> None:
        self.app, self.secret = app, secret

    async def __call__(self, method: str, path: str, who: tuple, body: dict | None, status: int):
        headers = [
            (k.lower().encode(), v.encode()) for k, v in gateway_headers(self.secret, *who).items()
        ]
        payload = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            headers += [(b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())]  # fmt: skip
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}  # fmt: skip
        sent = []

        async def receive():
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message):
            sent.append(message)

        await self.app(scope, receive, send)
        got = sent[0]["status"]
        if got != status:
            raise RuntimeError(f"{method} {path}: {got}, not {status}: {sent[1:]}")
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return json.loads(body) if body else None


async def measure(args, settings: Settings, secret: str) -> dict[str, list[float]]:
    app = create_app(settings)
    call = AsgiCaller(app, secret)
    registrar = (1, "rhenderson", "registrar")
    course = await call("POST", "/courses", registrar, {"department_id": 1, "code": "CPSC 998",
                                                        "title": "Cost"}, 201)  # fmt: skip
    sections = []
    for n in range(1, 41):
        body = {"course_id": course["id"], "section_number": n, "capacity": 1000}
        sections.append((await call("POST", "/sections", registrar, body, 201))["id"])
    students = [(u, f"c{u}", "student") for u in STUDENTS]
    for who in students:  # every student known, as after their first request
        await call("GET", f"/users/{who[0]}/sections", who, None, 200)

    costs: dict[str, list[float]] = {"enroll": [], "drop": [], "my sections": []}
    for _ in range(args.rounds):
        spent = dict.fromkeys(costs, 0.0)
        for i in range(args.requests):
            who, section = students[i % len(students)], sections[i * 7 % len(sections)]
            user = who[0]
            for kind, request in (
                ("enroll", ("POST", f"/users/{user}/enrollments", {"section_id": section}, 201)),
                ("my sections", ("GET", f"/users/{user}/sections", None, 200)),
                ("drop", ("DELETE", f"/users/{user}/enrollments/{section}", None, 200)),
            ):
                method, path, body, status = request
                started = time.process_time()
                await call(method, path, who, body, status)
                spent[kind] += time.process_time() - started
        for kind in costs:
            costs[kind].append(spent[kind] / args.requests)
    return costs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=2000, help="of each kind, per round")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="request-cost-"))
    init_db(work / "enroll.db")
    secret_file = write_secret(work / "gateway.secret")
    settings = Settings(database=work / "enroll.db", gateway_secret_file=secret_file)
    costs = uvloop.run(measure(args, settings, secret_file.read_text().strip()))
    for kind, rounds in costs.items():
        best, median = min(rounds), sorted(rounds)[len(rounds) // 2]
        print(f"{kind:12} best {best * 1e6:6.0f} µs CPU, median {median * 1e6:6.0f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
