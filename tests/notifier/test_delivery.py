"""The notifier (issue 27): due outbox events go out by SMTP, each marked delivered right after
the server accepted it, with a Message-ID from the event id; a mail server that is down or
refuses gets the event again later (exponential backoff), and nothing is sent twice."""

import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from app.enrollment.init_db import init_db
from app.enrollment.notifications import queries
from app.notifier.delivery import DeliveryFailed, Notifier, backoff, message_id
from app.notifier.settings import Settings
from tests.enrollment.helpers import make_secret_file
from tests.notifier.smtp_server import SmtpServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "enroll.db"
    init_db(path)
    return path


def settings_for(tmp_path: Path, database: Path, port: int, **overrides) -> Settings:
    given = {
        "database": database,
        "auth_urls": ("http://127.0.0.1:1",),
        "gateway_secret_file": make_secret_file(tmp_path),
        "smtp_port": port,
        "smtp_timeout_seconds": 2,
    }
    return Settings(**(given | overrides))


def add_events(database: Path, *user_ids: int) -> list[int]:
    conn = sqlite3.connect(database)
    with conn:
        ids = [
            queries.insert(
                conn, user_id=u, kind="promoted", section_id=1, subject=f"to {u}", body="A seat."
            )
            for u in user_ids
        ]
    conn.close()
    return ids


def outbox(database: Path) -> list[tuple]:
    conn = sqlite3.connect(database)
    rows = conn.execute(
        "SELECT id, delivered_at IS NOT NULL, attempts, last_error FROM notifications ORDER BY id"
    ).fetchall()
    conn.close()
    return rows


def address(user_id: int) -> str:
    return f"user{user_id}@example.edu"


def test_due_events_are_sent_once_each_and_marked(tmp_path, database):
    ids = add_events(database, 11, 12, 11)
    with SmtpServer() as server:
        notifier = Notifier(settings_for(tmp_path, database, server.port), addresses=address)
        assert notifier.run_once() == 3
        assert notifier.run_once() == 0  # nothing left: nothing sent again
        notifier.close()
    assert [m["To"] for m in server.accepted] == [
        "user11@example.edu",
        "user12@example.edu",
        "user11@example.edu",
    ]
    first = server.accepted[0]
    assert first["Message-ID"] == message_id(ids[0], "registrar.example.edu")
    assert (first["Subject"], first["X-Notification-Id"]) == ("to 11", str(ids[0]))
    assert "A seat." in first.get_payload()
    assert [row[1] for row in outbox(database)] == [1, 1, 1]


def test_a_mail_server_that_is_down_gets_the_event_later_exactly_once(tmp_path, database):
    [event] = add_events(database, 11)
    clock = Clock()
    down = settings_for(tmp_path, database, free_port(), backoff_first_seconds=5)
    notifier = Notifier(down, addresses=address, clock=clock)
    assert notifier.run_once() == 0
    assert notifier.run_once() == 0  # within the backoff: not even tried
    [(_, delivered, attempts, error)] = outbox(database)
    assert (delivered, attempts) == (0, 1) and error.startswith("server: mail server")
    assert REGISTRY.get_sample_value("notifications_failing") == 1
    notifier.close()

    with SmtpServer() as server:
        up = settings_for(tmp_path, database, server.port)
        clock.now += 10  # past the backoff (5 s, +-20%)
        notifier = Notifier(up, addresses=address, clock=clock)
        assert notifier.run_once() == 1
        assert notifier.run_once() == 0
        notifier.close()
    assert [m["Message-ID"] for m in server.accepted] == [
        message_id(event, "registrar.example.edu")
    ]
    assert REGISTRY.get_sample_value("notifications_pending") == 0


def test_a_server_crash_before_its_answer_means_the_event_is_sent_again(tmp_path, database):
    add_events(database, 11, 12)
    clock = Clock()
    with SmtpServer() as server:
        server.drop_during_data = 1
        notifier = Notifier(
            settings_for(tmp_path, database, server.port), addresses=address, clock=clock
        )
        assert notifier.run_once() == 0  # the first message was cut off: the batch stops
        clock.now += 600
        assert notifier.run_once() == 2
        notifier.close()
    assert sorted(m["To"] for m in server.accepted) == ["user11@example.edu", "user12@example.edu"]


def test_a_refused_message_is_retried_with_the_same_message_id_and_others_go_on(tmp_path, database):
    first, second = add_events(database, 11, 12)
    clock = Clock()
    with SmtpServer() as server:
        server.data_replies = ["550 mailbox unavailable"]
        notifier = Notifier(
            settings_for(tmp_path, database, server.port), addresses=address, clock=clock
        )
        assert notifier.run_once() == 1  # the second went on
        assert outbox(database)[0][1:3] == (0, 1)
        assert "550" in outbox(database)[0][3]
        clock.now += 600
        assert notifier.run_once() == 1
        notifier.close()
    ids = [m["Message-ID"] for m in server.accepted]
    assert ids == [
        message_id(second, "registrar.example.edu"),
        message_id(first, "registrar.example.edu"),
    ]


def test_an_address_the_auth_service_cannot_give_is_retried_later(tmp_path, database):
    add_events(database, 11)

    def unreachable(user_id: int) -> str:
        raise DeliveryFailed("address", f"no address for user {user_id}")

    with SmtpServer() as server:
        notifier = Notifier(settings_for(tmp_path, database, server.port), addresses=unreachable)
        assert notifier.run_once() == 0
        notifier.close()
    assert server.accepted == []
    assert outbox(database)[0][2:] == (1, "address: no address for user 11")


def test_backoff_doubles_up_to_the_most(tmp_path, database):
    s = settings_for(tmp_path, database, 25, backoff_first_seconds=2, backoff_max_seconds=60)
    assert 1.6 <= backoff(s, 0) <= 2.4
    assert 12.8 <= backoff(s, 3) <= 19.2
    assert 48 <= backoff(s, 20) <= 72


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"smtp_username": "mailer"}, "go together"),
        ({"smtp_tls": "ssl"}, "smtp_tls"),
        ({"smtp_port": 0}, "smtp_port"),
    ],
)
def test_settings_refuse_what_would_not_work(tmp_path, database, overrides, says):
    with pytest.raises(ValueError, match=says):
        settings_for(tmp_path, database, 25, **overrides)


def test_credentials_are_never_sent_in_clear_text_over_the_network(tmp_path, database):
    password = tmp_path / "smtp.password"
    password.write_text("hunter2hunter2")
    password.chmod(0o600)
    with pytest.raises(ValueError, match="clear text"):
        settings_for(
            tmp_path,
            database,
            587,
            smtp_host="mail.example.edu",
            smtp_username="mailer",
            smtp_password_file=password,
        )
    ok = settings_for(
        tmp_path,
        database,
        587,
        smtp_host="mail.example.edu",
        smtp_tls="starttls",
        smtp_username="mailer",
        smtp_password_file=password,
    )
    assert ok.smtp_password == "hunter2hunter2"


def test_an_address_is_asked_of_the_auth_service_again_only_once_it_is_old(tmp_path, database):
    import httpx

    from app.notifier.delivery import auth_addresses

    asked: list[str] = []
    current = {"email": "ava@example.edu"}

    def auth(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json=current)

    clock = Clock()
    settings = settings_for(tmp_path, database, 25, address_ttl_seconds=60)
    with httpx.Client(transport=httpx.MockTransport(auth)) as client:
        address = auth_addresses(settings, client, clock=clock)
        assert [address(9), address(9), address(10)] == ["ava@example.edu"] * 3
        assert asked == ["/internal/users/9", "/internal/users/10"]
        current["email"] = "ava.new@example.edu"  # the registrar changes it
        clock.now += 59
        assert address(9) == "ava@example.edu"  # within the minute: the one given
        clock.now += 2
        assert address(9) == "ava.new@example.edu"  # then asked again
        assert len(asked) == 3
        uncached = auth_addresses(
            settings_for(tmp_path, database, 25, address_ttl_seconds=0), client, clock=clock
        )
        uncached(9), uncached(9)
        assert len(asked) == 5


@pytest.mark.parametrize(
    "bad", [{"address_ttl_seconds": -1}, {"cpu_priority": "high"}, {"cpu_priority": 10}]
)
def test_bad_cache_or_priority_settings_are_refused(tmp_path, database, bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        settings_for(tmp_path, database, 25, **bad)
    assert next(iter(bad)) in str(refused.value)


def test_a_batchs_addresses_are_asked_for_in_one_request(tmp_path, database):
    import httpx

    from app.notifier.delivery import auth_addresses

    asked: list[str] = []

    def auth(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.query, "ascii"))
        ids = [int(i) for i in request.url.params.get_list("ids")]
        return httpx.Response(200, json=[{"id": i, "email": f"u{i}@example.edu"} for i in ids])

    add_events(database, 11, 12, 11, 13)
    settings = settings_for(tmp_path, database, 25)
    with httpx.Client(transport=httpx.MockTransport(auth)) as client, SmtpServer() as server:
        address = auth_addresses(settings, client)
        notifier = Notifier(
            settings.model_copy(update={"smtp_port": server.port}),
            addresses=address,
            prefetch=address.prefetch,
        )
        assert notifier.run_once() == 4
        notifier.close()
    assert asked == ["ids=11&ids=12&ids=13"]  # one request for the batch, none per mail
    assert sorted(m["To"] for m in server.accepted) == [
        "u11@example.edu", "u11@example.edu", "u12@example.edu", "u13@example.edu"
    ]  # fmt: skip


def test_a_subject_and_body_beyond_ascii_arrive_as_written(tmp_path, database):
    from email.header import decode_header, make_header

    conn = sqlite3.connect(database)
    with conn:
        queries.insert(
            conn, user_id=11, kind="promoted", section_id=1,
            subject="Enrolled in CPSC 449-01 — Zoë's section", body="Café: a seat for Zoë.",
        )  # fmt: skip
    conn.close()
    with SmtpServer() as server:
        notifier = Notifier(settings_for(tmp_path, database, server.port), addresses=address)
        assert notifier.run_once() == 1
        notifier.close()
    (mail,) = server.accepted
    assert str(make_header(decode_header(mail["Subject"]))) == (
        "Enrolled in CPSC 449-01 — Zoë's section"
    )
    assert "Café: a seat for Zoë." in mail.get_payload(decode=True).decode("utf-8")
    assert mail["To"] == "user11@example.edu"


def test_a_line_break_in_a_subject_is_never_a_header_of_its_own(tmp_path, database):
    from app.notifier.delivery import build_message

    settings = settings_for(tmp_path, database, 25)
    event = {"id": 1, "user_id": 11, "kind": "promoted", "created_at": "2026-12-06T09:00:00.000Z",
             "subject": "Hi\r\nBcc: victim@example.com", "body": "x"}  # fmt: skip
    sent = build_message(settings, event, "user11@example.edu").as_bytes()
    assert b"Subject: Hi Bcc: victim@example.com\n" in sent
    assert b"\nBcc:" not in sent


def test_mail_is_sent_at_idle_priority_and_marked_at_the_services_own(
    tmp_path, database, monkeypatch
):
    """bin/notifier's split (app/notifier/__main__.py): each message built and sent on a thread
    at SCHED_IDLE, each delivery marked (holding the database's write lock) on the notifier's
    own thread at the normal priority, so a mark is never held up by the rush waiting on it;
    a refusal met on the sending thread is handled as before."""
    from concurrent.futures import ThreadPoolExecutor

    from app.notifier import delivery
    from app.notifier.__main__ import lower_priority

    seen: dict[str, list[int]] = {"send": [], "mark": []}
    send, mark = delivery.Mailer.send, queries.mark_delivered

    def sending(self, message):
        seen["send"].append(os.sched_getscheduler(0))
        return send(self, message)

    def marking(tx, **kwargs):
        seen["mark"].append(os.sched_getscheduler(0))
        return mark(tx, **kwargs)

    monkeypatch.setattr(delivery.Mailer, "send", sending)
    monkeypatch.setattr(queries, "mark_delivered", marking)
    first, second = add_events(database, 11, 12)
    with (
        SmtpServer() as server,
        ThreadPoolExecutor(1, initializer=lower_priority, initargs=("idle",)) as sender,
    ):
        server.data_replies = ["550 mailbox unavailable"]
        settings = settings_for(tmp_path, database, server.port)
        notifier = Notifier(settings, addresses=address, sender=sender)
        assert notifier.run_once() == 1  # the first refused, the second sent
        notifier.close()
    assert seen == {"send": [os.SCHED_IDLE] * 2, "mark": [os.SCHED_OTHER]}
    assert [m["To"] for m in server.accepted] == ["user12@example.edu"]
    assert [row[1:3] for row in outbox(database)] == [(0, 1), (1, 0)]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test's thread untouched


def test_mail_waits_while_the_cpu_is_busy_but_never_longer_than_the_most(tmp_path, database):
    """A rush keeps every core wanted: the due events wait (nothing sent, nothing marked) while
    the host's CPU pressure is over NOTIFIER_DEFER_ABOVE_CPU_PRESSURE, go once it eases, and go
    anyway once the oldest has waited NOTIFIER_MAX_DEFER_SECONDS."""
    add_events(database, 11, 12)
    seen = {"pressure": 0.95}
    clock = Clock()
    clock.now = time.time()
    deferred = REGISTRY.get_sample_value("notification_deferrals_total") or 0.0
    with SmtpServer() as server:
        settings = settings_for(tmp_path, database, server.port, max_defer_seconds=60)
        notifier = Notifier(
            settings, addresses=address, pressure=lambda: seen["pressure"], clock=clock
        )
        assert notifier.run_once() == 0  # busy, and the events only just due
        assert not server.accepted and [row[1] for row in outbox(database)] == [0, 0]
        clock.now += 61  # busy still, but the oldest has waited past the most
        assert notifier.run_once() == 2
        add_events(database, 13)
        clock.now = time.time()
        assert notifier.run_once() == 0
        seen["pressure"] = 0.2  # the rush eased
        assert notifier.run_once() == 1
        notifier.close()
    assert [m["To"] for m in server.accepted] == [address(11), address(12), address(13)]
    assert REGISTRY.get_sample_value("notification_deferrals_total") == deferred + 2


def test_cpu_pressure_is_the_share_of_time_some_task_waited_for_a_core(tmp_path):
    from app.notifier.delivery import CpuPressure

    psi = tmp_path / "cpu"
    clock = Clock()
    pressure = CpuPressure(psi, clock=lambda: clock.now)
    assert pressure() is None  # no such file: a kernel without PSI never makes mail wait
    psi.write_text(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    assert pressure() is None  # a first look: nothing to compare with
    clock.now += 2.0
    psi.write_text(psi.read_text().replace("total=1000000", "total=2500000"))
    assert pressure() == pytest.approx(0.75)  # 1.5 s of waiting in 2 s
    psi.write_text("some total=garbled\n")
    assert pressure() is None
