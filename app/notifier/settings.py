"""Typed settings of the notifier, read from NOTIFIER_* environment variables. A missing or unsafe
value stops start-up with a line naming the variable."""

import ipaddress
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.common.settings import (
    LoopbackUrls,
    database_checked,
    load_or_exit,
    secret_file_checked,
)
from app.enrollment.settings import APPLICATION_ID, SCHEMA_VERSION


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", frozen=True)

    database: Path
    """The enrollment database, whose `notifications` table is the outbox."""

    auth_urls: LoopbackUrls
    """The auth service's instances (the LiteFS primary first): each recipient's address is
    asked there at delivery (GET /internal/users/{id}), so a changed address is the one used."""

    gateway_secret_file: Path
    """The secret the installation's services show each other (var/gateway.secret)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, gt=0, lt=65536)
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    """`tls`: SMTPS from the first byte (port 465); `starttls`: upgrade after EHLO (587)."""
    smtp_username: str | None = None
    smtp_password_file: Path | None = None
    """Mode 0600, read at start; with `smtp_username`, AUTH over TLS (or to a loopback server)."""
    smtp_timeout_seconds: float = Field(10.0, gt=0)

    mail_from: str = Field("Registrar <registrar@example.edu>", min_length=3)
    message_id_domain: str = Field("registrar.example.edu", pattern=r"^[A-Za-z0-9.-]+$")
    """Message-ID: <notification-{event id}@{message_id_domain}>, the same on every redelivery."""

    metrics_port: int | None = Field(None, gt=0, lt=65536)
    """Prometheus metrics on 127.0.0.1 (unset: none)."""

    poll_seconds: float = Field(0.25, gt=0)
    batch_size: int = Field(50, gt=0)

    address_ttl_seconds: float = Field(60.0, ge=0)
    """How long an address the auth service gave is used again before it is asked anew (0: ask
    for every message). A registration-day rush tells one student several things in a minute;
    asking for each cost the auth service about as much CPU as the delivery itself (bench.outbox).
    The price: a registrar's change of address reaches the mail this much later."""

    cpu_priority: Literal["idle", "low", "normal"] = "idle"
    """The share of the CPU of the notifier's sending thread (building and sending each message)
    beside the services on one host: `idle` (Linux SCHED_IDLE: it runs only on a core nothing
    else wants), `low` (niceness 10) or `normal`. Mail is background work: while a rush holds
    the cores it waits, and the seats do not (bench.outbox: at the services' priority the rush
    ran 20-27% slower on 2 cores; at niceness 10 still ~20%). The price is mail later during a
    rush; on a host of its own the setting changes nothing. The thread that marks deliveries,
    holding the database's write lock, always runs at the services' priority."""
    defer_above_cpu_pressure: float = Field(0.5, gt=0, le=1)
    """Mail waits while the host's CPU is this busy: the share of the time since the notifier
    last looked in which some runnable task waited for a core (Linux PSI, /proc/pressure/cpu
    `some`; a kernel without it: never). A registration-day rush keeps it near 1; even at
    SCHED_IDLE, delivering during the rush took 8-13% of its throughput on 2 cores (bench.outbox),
    so the seats are handed out first and the mail goes once the rush eases. 1: never waits."""
    max_defer_seconds: float = Field(60.0, ge=0)
    """The longest an event due is kept waiting for the CPU to calm down: older, it is sent
    however busy the host is."""
    backoff_first_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)

    @field_validator("database")
    @classmethod
    def _database_is_enrollment_s(cls, path: Path) -> Path:
        return database_checked(path, application_id=APPLICATION_ID, user_version=SCHEMA_VERSION)

    @field_validator("gateway_secret_file")
    @classmethod
    def _secret_usable(cls, path: Path) -> Path:
        return secret_file_checked(path)

    @field_validator("smtp_password_file")
    @classmethod
    def _password_usable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist")
        if path is not None and path.stat().st_mode & 0o077:
            raise ValueError(f"{path} is readable by others; chmod 600 it")
        return path

    @model_validator(mode="after")
    def _credentials_safe(self) -> Self:
        if (self.smtp_username is None) != (self.smtp_password_file is None):
            raise ValueError("NOTIFIER_SMTP_USERNAME and NOTIFIER_SMTP_PASSWORD_FILE go together")
        if (
            self.smtp_username is not None
            and self.smtp_tls == "none"
            and not _loopback(self.smtp_host)
        ):
            raise ValueError(
                "SMTP credentials would cross the network in clear text: set NOTIFIER_SMTP_TLS"
                " to starttls or tls"
            )
        return self

    @property
    def gateway_secret(self) -> str:
        return self.gateway_secret_file.read_text().strip()

    @property
    def smtp_password(self) -> str | None:
        if self.smtp_password_file is None:
            return None
        return self.smtp_password_file.read_text().strip()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings() -> Settings:
    """Settings from the NOTIFIER_* environment, or exit with one line per bad variable."""
    return load_or_exit(Settings, "notifier")
