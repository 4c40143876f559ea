"""Typed settings of the enrollment service, read from ENROLL_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.common.idempotency import TTL_SECONDS
from app.common.settings import (
    HttpUrls,
    LoopbackUrls,
    database_checked,
    load_or_exit,
    secret_file_checked,
)

APPLICATION_ID = int.from_bytes(b"ENRL", "big")  # share/enroll/schema.sql sets these two
SCHEMA_VERSION = 6


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENROLL_", frozen=True)

    database: Path
    """The one SQLite file that every enrollment instance shares."""

    gateway_secret_file: Path
    """File holding the secret the gateway adds to every request (X-Gateway-Secret)."""

    instance: str = "enrollment"
    """Name of this instance, in its own /health answer (no gateway routes it). Answers through
    the gateway do not name the instance; its /metrics counts what it served."""

    auth_urls: LoopbackUrls = ()
    """The auth service's instances, the LiteFS primary's first (comma-separated base URLs): an
    account the registrar names is asked of them (app/enrollment/people/directory.py). Empty: an
    id is 404 until its account is announced here or its user makes a request."""

    idempotency_ttl_seconds: int = Field(TTL_SECONDS, gt=0)
    """How long the answer to an Idempotency-Key is kept for its retries
    (app/common/idempotency.py); a key older than this is a new key."""

    offer_sweep_seconds: float = Field(1.0, gt=0, le=60)
    """How often each instance looks for seat offers whose claim window has passed
    (app/enrollment/offers/sweeper.py): an offer expires at most this long after its deadline."""

    primary_urls: HttpUrls = ()
    """On an instance whose database is a LiteFS read replica (bin/multihost's hosts h2 and h3):
    the enrollment instances of the primary's host (comma-separated base URLs). This instance then
    answers reads from its own copy and relays every write to them (app/enrollment/relay.py).
    Empty (one host, or the primary's): this instance writes its database itself."""

    ack: Literal["local", "replica"] = "local"
    """On the LiteFS primary (bin/multihost): when a write is answered. `local`: once it is
    committed on the primary's copy, as on one host. `replica`: once a replica (`ack_replicas`)
    also holds it, so that an answered write survives the primary's loss (app/enrollment/relay.py
    `ReplicaAck`); slower, and a 503 `not_replicated` when no replica confirms within
    `ack_seconds`. docs/multihost.md says why `local` is the default."""

    ack_replicas: HttpUrls = ()
    """With `ack=replica`: the LiteFS API of each replica node of this database (comma-separated
    base URLs); the instance follows their `GET /events` for the transactions they hold."""

    ack_seconds: float = Field(2.0, gt=0, le=30)
    """With `ack=replica`: how long an answer waits for a replica to hold its write."""

    acked_position_file: Path | None = None
    """On a replica's instance: a file where it keeps the highest primary position (TXID) it
    has passed on to a client, which `bin/multihost promote` reads: a replica behind it must not
    become the primary."""

    writer_lock_file: Path | None = None
    """The file the instances of one database queue their writers on (app/common/db.py
    `WriterLock`); by default beside the database. A LiteFS mount holds nothing but databases,
    so bin/multihost names one outside it."""

    one_transaction_a_turn: bool = False
    """Commit the writes an instance runs back to back in one write turn (app/common/db.py
    `WriterLock.run`) as one transaction, each request in a savepoint of its own: one COMMIT a
    turn rather than one a request, for a database whose commits are dear (a LiteFS mount: 1.6 ms
    each, docs/multihost.md). A request that fails undoes its own savepoint only. If the COMMIT
    fails, every request of the turn fails (`TurnNotCommitted`: a 500, the reason in the log).
    Off: every request is its own transaction, as on one host."""

    notifications: bool = True
    """Write the notifications outbox (issue 27); off: no event is recorded and nobody is told,
    for an installation without mail (app/enrollment/notifications/service.py `without_outbox`)."""

    @field_validator("database")
    @classmethod
    def _database_is_ours(cls, path: Path) -> Path:
        return database_checked(path, application_id=APPLICATION_ID, user_version=SCHEMA_VERSION)

    @field_validator("gateway_secret_file")
    @classmethod
    def _secret_usable(cls, path: Path) -> Path:
        return secret_file_checked(path)

    @property
    def replica(self) -> bool:
        """Whether this instance relays its writes to the primary's (`primary_urls`)."""
        return bool(self.primary_urls)

    @property
    def writer_lock(self) -> Path:
        return self.writer_lock_file or self.database.with_name(self.database.name + ".writer-lock")

    @property
    def gateway_secret(self) -> str:
        return self.gateway_secret_file.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """Settings from the ENROLL_* environment, or exit with one line per bad variable."""
    return load_or_exit(Settings, "enrollment service")
