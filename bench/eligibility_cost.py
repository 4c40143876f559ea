"""What the eligibility rules cost an enrollment, in process, paired and interleaved:

    python -m bench.eligibility_cost [--rounds 8] [--pairs 1000]

One enrollment database, fresh and seeded, in a temporary directory: 40 sections with meeting
times, 300 students who each already hold three seats (so the time-conflict and credit queries
have rows to look at). Each round runs --pairs enroll+drop pairs through the service layer
(`service.enroll`, `service.drop`: the transactions a request runs, without HTTP) twice: once
with the rules checked (the code as it is), once with `service.eligibility_refusal` replaced by
a function that refuses nobody, in alternating order. Prints the best round of each, in CPU per
pair, and their ratio. The checks pass for every student here: their cost when they refuse
nobody, the registration-day case. Whole requests through the gateway cost 5-10 times more CPU
(bench/run.py), so the share of a request is smaller still.
"""

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.common.db import connect, immediate
from app.common.identity import gateway_headers
from app.enrollment.enrollments import service
from app.enrollment.enrollments.models import EnrollIn
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.people.models import Identity
from app.enrollment.settings import Settings
from harness.enroll_cluster import write_secret

DAYS = ["MW", "TR", "F", "MWF"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--pairs", type=int, default=1000)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="eligibility-cost-"))
    init_db(work / "enroll.db")
    secret_file = write_secret(work / "gateway.secret")
    secret = secret_file.read_text().strip()
    settings = Settings(database=work / "enroll.db", gateway_secret_file=secret_file)
    registrar = gateway_headers(secret, 1, "rhenderson", "registrar")
    with TestClient(create_app(settings)) as client:
        course = client.post("/courses", headers=registrar, json={
            "department_id": 1, "code": "CPSC 499", "title": "Bench", "credits": 1,
        }).json()["id"]  # fmt: skip
        sections = []
        for n in range(40):
            hour = 8 + n % 12
            meeting = {"days": DAYS[n % 4], "start": f"{hour:02}:00", "end": f"{hour:02}:50"}
            body = {"course_id": course, "section_number": n + 1, "capacity": 1000,
                    "meetings": [meeting]}  # fmt: skip
            sections.append(client.post("/sections", headers=registrar, json=body).json()["id"])
        # The sections the measured pairs enroll in meet on Saturday, when no held seat does:
        # every check runs its query and passes, with checks on and off alike.
        targets = []
        for n in range(40):
            meeting = {"days": "S", "start": f"{8 + n % 12:02}:00", "end": f"{8 + n % 12:02}:50"}
            body = {"course_id": course, "section_number": 100 + n, "capacity": 1000,
                    "meetings": [meeting]}  # fmt: skip
            targets.append(client.post("/sections", headers=registrar, json=body).json()["id"])
        users = range(50_000, 50_300)
        for i, u in enumerate(users):
            headers = gateway_headers(secret, u, f"b{u}", "student")
            for k in range(3):  # three seats each
                section = sections[(i + 13 * k) % 40]
                client.post(
                    f"/users/{u}/enrollments", headers=headers, json={"section_id": section}
                )
    students = [Identity(user_id=u, username=f"b{u}", roles=frozenset({"student"})) for u in users]
    conn = connect(work / "enroll.db")

    def round_of(pairs: int) -> float:
        started = time.process_time()
        for i in range(pairs):
            who = students[i % len(students)]
            section = targets[(i * 7 + 5) % 40]
            with immediate(conn) as tx:  # as `db.write` runs each, in its own transaction
                service.enroll(tx, who, who.user_id, EnrollIn(section_id=section))  # never refused
            with immediate(conn) as tx:
                service.drop(tx, who, who.user_id, section)
        return (time.process_time() - started) / pairs

    checked, unchecked = [], []
    real = service.eligibility_refusal
    for r in range(args.rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            service.eligibility_refusal = real if on else (lambda *a, **k: None)
            (checked if on else unchecked).append(round_of(args.pairs))
    service.eligibility_refusal = real
    conn.close()
    best_on, best_off = min(checked), min(unchecked)
    print(f"rules checked: {best_on * 1e6:5.0f} µs CPU per enroll+drop (best of {args.rounds})")
    print(f"rules not run: {best_off * 1e6:5.0f} µs CPU per enroll+drop")
    print(f"throughput ratio, checked / not run: {best_off / best_on:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
