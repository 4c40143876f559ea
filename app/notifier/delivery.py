"""Delivering the outbox: each due event is sent by SMTP and marked delivered right after the mail
server accepted it; a failure is marked with the time of the next attempt (exponential backoff).

Exactly once, and the one window left: the event is marked delivered in its own transaction (a
synced commit) as soon as the server has answered 250 to its DATA, before the next event is sent.
A crash of the notifier before that 250 leaves the event undelivered, and it is sent again; a
crash of the mail server before it means the server did not take it (SMTP: a message is the
server's only once it said 250). Only a crash in the moment between the server's 250 and that
commit (one UPDATE; a power cut, also before the commit's fdatasync just after) sends the event
twice; it then has the same Message-ID, `<notification-{id}@{domain}>`, by which a mail client
or the mail server recognises the copy (the demo's Mailpit drops it: bin/mailpit). Two
notifiers never run at once: each holds an flock beside the database while it delivers.
"""

import fcntl
import logging
import os
import random
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from contextlib import suppress
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

import httpx
from prometheus_client import Counter, Gauge

from app.common.db import connect, immediate, sync_committed
from app.common.identity import GATEWAY_SECRET_HEADER
from app.enrollment.notifications import queries
from app.enrollment.sql import Row
from app.notifier.settings import Settings

log = logging.getLogger("notifier")

DELIVERED = Counter("notifications_delivered_total", "Notifications the mail server accepted")
FAILED = Counter(
    "notification_delivery_failures_total",
    "Delivery attempts that failed, by what failed",
    ["reason"],
)
DEFERRED = Counter(
    "notification_deferrals_total", "Turns the notifier waited because the CPU was busy"
)
PENDING = Gauge("notifications_pending", "Notifications not delivered yet")
FAILING = Gauge(
    "notifications_failing", "Notifications not delivered yet whose last attempt failed"
)


class DeliveryFailed(Exception):
    """One event could not be delivered now; `server_down` when no other event can be either."""

    def __init__(self, reason: str, detail: str, *, server_down: bool = False) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.server_down = reason, detail, server_down


class Addresses(Protocol):
    def __call__(self, user_id: int) -> str: ...


# At most this many ids per lookup (app/auth/routes.py MAX_IDS_PER_LOOKUP).
_IDS_PER_LOOKUP = 200


class AuthAddresses:
    """The address of a user as the auth service has it (the primary first), asked again once
    the one it gave is `address_ttl_seconds` old. `prefetch` asks for a whole batch's in one
    request (GET /internal/users?ids=...): one per student cost the auth service about as much
    CPU as delivering the mail (bench.outbox)."""

    def __init__(
        self, settings: Settings, client: httpx.Client, clock: Callable[[], float]
    ) -> None:
        self.settings, self.client, self.clock = settings, client, clock
        self.headers = {GATEWAY_SECRET_HEADER: settings.gateway_secret}
        self.known: dict[int, tuple[float, str]] = {}

    def __call__(self, user_id: int) -> str:
        found = self.known.get(user_id)
        if found is not None and self.clock() - found[0] < self.settings.address_ttl_seconds:
            return found[1]
        email = self._ask(user_id)
        self._keep(user_id, email)
        return email

    def prefetch(self, user_ids: Iterable[int]) -> None:
        """Learn the addresses of `user_ids` not known (or too old) in as few requests as can
        be; one not learnt (an auth service down, an unknown id) is asked for alone when sent."""
        if self.settings.address_ttl_seconds <= 0:
            return  # nothing kept: each is asked for when sent
        now = self.clock()
        wanted = sorted(
            {
                u
                for u in user_ids
                if u not in self.known
                or now - self.known[u][0] >= self.settings.address_ttl_seconds
            }
        )
        for i in range(0, len(wanted), _IDS_PER_LOOKUP):
            chunk = wanted[i : i + _IDS_PER_LOOKUP]
            for base in self.settings.auth_urls:
                try:
                    reply = self.client.get(
                        f"{base}/internal/users",
                        params={"ids": chunk},
                        headers=self.headers,
                        timeout=2,
                    )
                except httpx.HTTPError:
                    continue
                if reply.status_code == 200:
                    for account in reply.json():
                        self._keep(account["id"], account["email"])
                    break

    def _keep(self, user_id: int, email: str) -> None:
        if self.settings.address_ttl_seconds > 0:
            if len(self.known) > 100_000:  # a bound: an old entry is only asked again
                self.known.clear()
            self.known[user_id] = (self.clock(), email)

    def _ask(self, user_id: int) -> str:
        last = "no auth URL is set"
        for base in self.settings.auth_urls:
            try:
                reply = self.client.get(
                    f"{base}/internal/users/{user_id}", headers=self.headers, timeout=2
                )
            except httpx.HTTPError as exc:
                last = f"{base}: {exc}"
                continue
            if reply.status_code == 200:
                email: str = reply.json()["email"]
                return email
            last = f"{base} answered {reply.status_code}"
            if reply.status_code == 404:
                break
        raise DeliveryFailed("address", f"no address for user {user_id}: {last}")


def auth_addresses(
    settings: Settings, client: httpx.Client, *, clock: Callable[[], float] = time.monotonic
) -> AuthAddresses:
    return AuthAddresses(settings, client, clock)


def message_id(event_id: int, domain: str) -> str:
    """The same for every delivery of one event, so a redelivered copy is recognisable."""
    return f"<notification-{event_id}@{domain}>"


# UTF-8 text in quoted-printable: readable in the raw message, 7-bit safe on the wire.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def build_message(settings: Settings, event: Row, to: str) -> Message:
    """The mail of one event. Built with the email package's compat32 API: its header registry
    (EmailMessage) cost 5 times the CPU (1.1 ms a message against 0.22 ms, measured here), paid
    for every mail of a rush on the cores the rush needs (bench.outbox). A header value with a
    line break is refused by either (no header injection); non-ASCII is RFC 2047-encoded."""
    body = (
        f"{event['body']}\n\nYour notifications: in the registration web app, or"
        f" GET /enroll_api/users/{event['user_id']}/notifications.\n"
    )
    message = Message()
    message["MIME-Version"] = "1.0"
    message.set_payload(body, charset=_UTF8_QP)  # sets Content-Type and its encoding
    message["From"] = settings.mail_from
    message["To"] = to
    # One line whatever was stored (the outbox's texts are the service's own, from checked
    # input; a line break would otherwise be refused here, and stop the batch, every time).
    subject = " ".join(str(event["subject"]).splitlines())
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    message["Message-ID"] = message_id(event["id"], settings.message_id_domain)
    # The time of the event, not of this attempt: a redelivery is the same message.
    message["Date"] = format_datetime(_event_time(event["created_at"]))
    message["X-Notification-Id"] = str(event["id"])
    message["X-Notification-Kind"] = event["kind"]
    return message


def _event_time(created_at: str) -> datetime:
    """The event's time (stored UTC, YYYY-MM-DDTHH:MM:SS.sssZ)."""
    return datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class Mailer:
    """One SMTP connection, opened when needed and kept across a batch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: Message) -> None:
        """Send one message, or raise DeliveryFailed; returning means the server said 250."""
        try:
            smtp = self._connection()
            sender = parseaddr(str(message["From"]))[1]
            smtp.sendmail(sender, [str(message["To"])], message.as_bytes())
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed("refused", f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryFailed(
                "refused" if permanent else "server",
                f"{exc.smtp_code} {exc.smtp_error!r}",
                server_down=not permanent,
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryFailed("server", f"mail server: {exc!r}", server_down=True) from exc

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self.settings
        smtp: smtplib.SMTP
        if s.smtp_tls == "tls":
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username is not None:
                smtp.login(s.smtp_username, s.smtp_password or "")
        except BaseException:
            with suppress(Exception):
                smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def close(self) -> None:
        if self._smtp is not None:
            with suppress(Exception):
                self._smtp.quit()
            with suppress(Exception):
                self._smtp.close()
            self._smtp = None


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: doubling from the first, at most the max, with
    +-20% jitter so that events failed together are not retried together."""
    base = min(settings.backoff_first_seconds * 2.0**attempts, settings.backoff_max_seconds)
    return base * random.uniform(0.8, 1.2)


class CpuPressure:
    """The share of the wall time since the last call in which some runnable task of the host
    waited for a core (Linux PSI: /proc/pressure/cpu, `some total=` in microseconds); None on a
    kernel that does not report it, or on the first call."""

    def __init__(
        self, path: Path = Path("/proc/pressure/cpu"), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path, self.clock = path, clock
        self.last: tuple[float, int] | None = None

    def __call__(self) -> float | None:
        try:
            some = next(line for line in self.path.read_text().splitlines() if line[:4] == "some")
            total = int(some.rsplit("total=", 1)[1])
        except (OSError, StopIteration, IndexError, ValueError):
            return None
        now, last = self.clock(), self.last
        self.last = (now, total)
        if last is None or now <= last[0]:
            return None
        return (total - last[1]) / ((now - last[0]) * 1e6)


class Notifier:
    """Delivers due events in batches until told to stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        addresses: Addresses,
        prefetch: Callable[[Iterable[int]], None] | None = None,
        mailer: Mailer | None = None,
        sender: Executor | None = None,
        pressure: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.pressure = pressure  # bin/notifier: CpuPressure(); None: never waits for the CPU
        # Where the messages are built and sent (the mail server's time and most of the CPU):
        # the thread of `sender` when given (bin/notifier: one at Settings.cpu_priority), else
        # this one. The outbox is read and marked here, holding the write lock for each mark.
        self.sender = sender
        self.addresses = addresses
        self.prefetch = prefetch or (lambda user_ids: None)
        self.mailer = mailer or Mailer(settings)
        self.clock = clock
        path = settings.database
        self.conn = connect(path, writer_lock_file=path.with_name(path.name + ".writer-lock"))
        # Each mark is on disk before the next message is sent (a power cut after a commit
        # that is only in the page cache would send that event again): synced after the commit
        # (`_write`), once the write lock is let go, as the services' writes are. Synced inside
        # the commit (synchronous = FULL), each mark held the database's one write lock for an
        # fsync, which a rush's seats waited for (bench.outbox).
        self.server_retry_at = 0.0
        self.server_failures = 0
        self.stopping = False

    def run_once(self) -> int:
        """Deliver the events due now (one batch); how many were delivered."""
        now = self.clock()
        if now < self.server_retry_at:
            return 0
        # Looked at every turn, so that it covers the last turn only (not an idle hour).
        pressure = self.pressure() if self.pressure is not None else None
        batch = queries.due(self.conn, now=now, limit=self.settings.batch_size)
        if batch and self._cpu_busy(pressure, batch[0], now):
            DEFERRED.inc()
            return 0
        self.prefetch(event["user_id"] for event in batch)
        delivered = 0
        addresses: dict[int, str] = {}
        for event in batch:
            if self.stopping:
                break
            try:
                if event["user_id"] not in addresses:
                    addresses[event["user_id"]] = self.addresses(event["user_id"])
                self._send(event, addresses[event["user_id"]])
            except DeliveryFailed as failure:
                self._failed(event, failure)
                if failure.server_down:
                    break
                continue
            self._write(queries.mark_delivered, notification_id=event["id"])
            DELIVERED.inc()
            self.server_failures = 0
            delivered += 1
        if not batch:
            self.mailer.close()  # idle: no connection held open for the server to time out
        self.update_gauges()
        return delivered

    def _cpu_busy(self, pressure: float | None, oldest: Row, now: float) -> bool:
        """Whether to leave the due events for a later turn: the host's CPU pressure busier than
        Settings.defer_above_cpu_pressure, and the oldest due event (the batch's first) not
        waiting longer than Settings.max_defer_seconds yet."""
        if pressure is None or pressure <= self.settings.defer_above_cpu_pressure:
            return False
        waited = now - _event_time(oldest["created_at"]).timestamp()
        return waited < self.settings.max_defer_seconds

    def _send(self, event: Row, to: str) -> None:
        def send() -> None:
            self.mailer.send(build_message(self.settings, event, to))

        if self.sender is None:
            send()
        else:
            self.sender.submit(send).result()  # its DeliveryFailed raised here

    def _failed(self, event: Row, failure: DeliveryFailed) -> None:
        FAILED.labels(failure.reason).inc()
        now = self.clock()
        retry_at = now + backoff(self.settings, event["attempts"])
        self._write(
            queries.mark_failed,
            notification_id=event["id"],
            next_attempt=retry_at,
            error=f"{failure.reason}: {failure.detail}",
        )
        log.warning("notification %s not delivered: %s", event["id"], failure.detail)
        if failure.server_down:
            self.server_failures += 1
            self.server_retry_at = now + backoff(self.settings, self.server_failures - 1)

    def _write(self, fn: Callable[..., None], **kwargs: Any) -> None:
        with immediate(self.conn) as tx:
            fn(tx, **kwargs)
        sync_committed(self.conn)

    def update_gauges(self) -> None:
        pending, failing = queries.delivery_counts(self.conn)
        PENDING.set(pending)
        FAILING.set(failing)

    def close(self) -> None:
        self.mailer.close()
        self.conn.close()


def hold_the_delivery_lock(database: Path) -> int:
    """Block until no other notifier delivers from `database`; the lock lasts the process."""
    lock_file = database.with_name(database.name + ".notifier-lock")
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("another notifier delivers from %s: waiting for it to stop", database)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
