"""Notifications end to end (issue 27): through the real gateways, the enrollment instances, the
auth service (each address is asked of it) and the notifier, into Mailpit. A student who enrolls
and the waitlist head a drop promotes get their mail within seconds; a notifier killed while it
delivers, and Mailpit down for a while, leave every event arriving exactly once."""

import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from harness import http
from harness.auth_cluster import wait_for
from harness.cluster import Cluster
from harness.mail import MAILPIT, MailStack
from harness.procs import gone
from tests.enrollment.helpers import PEOPLE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mail(cluster: Cluster) -> Iterator[MailStack]:
    if not MAILPIT.exists():
        pytest.fail(f"{MAILPIT} is missing: run ./bin/test or ./bin/start, which build Mailpit")
    stack = MailStack(cluster)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def as_(cluster: Cluster, user_id: int) -> dict[str, str]:
    person = PEOPLE[user_id]
    token = cluster.token(user_id, person["username"], *person["roles"])
    return {"Authorization": f"Bearer {token}"}


def api(cluster: Cluster) -> str:
    return cluster.enroll_gateway.url + "/enroll_api"


def within(seconds: float, predicate) -> bool:
    """Whether `predicate()` held within `seconds` (wait_for's 0.0, at once, is a yes)."""
    return wait_for(predicate, seconds, interval=0.02) is not None


def mail_to(mail: MailStack, address: str, subject_part: str, seconds: float) -> dict | None:
    """The first mail to `address` whose subject has `subject_part`, once it arrived."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in mail.mailpit.messages():
            to = [recipient["Address"] for recipient in message["To"]]
            if address in to and subject_part in message["Subject"]:
                return message
        time.sleep(0.05)
    return None


def undelivered(cluster: Cluster) -> int:
    conn = sqlite3.connect(cluster.enrollment.db)
    try:
        return conn.execute(
            "SELECT count(*) FROM notifications WHERE delivered_at IS NULL"
        ).fetchone()[0]
    finally:
        conn.close()


def test_a_student_who_enrolls_gets_the_mail_within_seconds(cluster: Cluster, mail: MailStack):
    student = 20
    sections = http.get(f"{api(cluster)}/sections", headers=as_(cluster, student)).json()
    open_section = next(s for s in sections if s["seats_available"] > 0)
    started = time.monotonic()
    reply = http.post(
        f"{api(cluster)}/users/{student}/enrollments",
        json={"section_id": open_section["id"]},
        headers=as_(cluster, student),
    )
    assert reply.status_code == 201, reply.text
    address = f"{PEOPLE[student]['username']}@example.edu"
    message = mail_to(mail, address, "Enrolled in", 5)
    assert message is not None, f"no mail to {address} within 5 s"
    print(f"enroll to mail in Mailpit: {time.monotonic() - started:.2f} s")
    assert message["Subject"] == f"Enrolled in {open_section['course_code']}-" + (
        f"{open_section['section_number']:02d}"
    )
    [note] = http.get(
        f"{api(cluster)}/users/{student}/notifications", headers=as_(cluster, student)
    ).json()
    assert message["MessageID"] == f"notification-{note['id']}@registrar.example.edu"
    assert within(
        5,
        lambda: http.get(
            f"{api(cluster)}/users/{student}/notifications", headers=as_(cluster, student)
        ).json()[0]["delivered"],
    )


def test_a_drop_promotes_the_head_who_gets_the_mail_naming_the_section(
    cluster: Cluster, mail: MailStack
):
    registrar = as_(cluster, 1)
    waitlist = http.get(f"{api(cluster)}/sections/1/waitlist", headers=registrar).json()
    head = waitlist[0]["user_id"]
    enrolled = http.get(
        f"{api(cluster)}/sections/1/enrollments", params={"status": "enrolled"}, headers=registrar
    ).json()
    leaver = enrolled[0]["user_id"]
    dropped = http.delete(
        f"{api(cluster)}/users/{leaver}/enrollments/1", headers=as_(cluster, leaver)
    )
    assert dropped.status_code == 200, dropped.text
    assert [p["user_id"] for p in dropped.json()["promoted"]] == [head]
    address = f"{PEOPLE[head]['username']}@example.edu"
    message = mail_to(mail, address, "A seat came", 5)
    assert message is not None, f"no mail to {address} within 5 s"
    assert "CPSC 449-01" in message["Subject"]


def test_a_killed_notifier_and_a_mail_server_down_lose_nothing_and_send_nothing_twice(
    cluster: Cluster, mail: MailStack
):
    mail.mailpit.delete_all()
    registrar = as_(cluster, 1)
    students = range(9, 39)

    def place_holds(reason: str) -> None:
        for student in students:
            reply = http.post(
                f"{api(cluster)}/users/{student}/holds", json={"reason": reason}, headers=registrar
            )
            assert reply.status_code == 201, reply.text

    # The notifier killed (SIGKILL) while it delivers: its supervisor starts it again.
    place_holds("library fines")
    assert within(10, lambda: len(mail.mailpit.messages()) >= 3)
    killed = mail.notifier_pid()
    os.kill(killed, signal.SIGKILL)
    assert within(5, lambda: gone(killed))
    assert within(5, lambda: mail.notifier_pid() != killed), "the supervisor did not restart it"

    # Mailpit down while more events are written: they wait, failing, and none is lost.
    mail.mailpit.stop()
    place_holds("advising")
    assert within(10, lambda: undelivered(cluster) >= len(students))

    def failing() -> bool:
        listed = http.get(f"{api(cluster)}/notifications/undelivered", headers=registrar)
        return any(event["attempts"] > 0 for event in listed.json())

    assert within(10, failing), "the registrar does not see the failing deliveries"
    time.sleep(2)  # a while down: several failed attempts each
    mail.mailpit.start()

    assert within(30, lambda: undelivered(cluster) == 0), "not every event was delivered"
    messages = mail.mailpit.messages()
    conn = sqlite3.connect(cluster.enrollment.db)
    events = [
        f"notification-{row[0]}@registrar.example.edu"
        for row in conn.execute("SELECT id FROM notifications WHERE kind = 'hold_placed'")
    ]
    conn.close()
    sent = Counter(m["MessageID"] for m in messages)
    assert sorted(sent) == sorted(events), "an event was lost, or one not written was sent"
    assert [mid for mid, n in sent.items() if n > 1] == [], "sent twice"
    assert len(events) == 2 * len(students)
