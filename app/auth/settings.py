"""The auth service's settings, from AUTH_* environment variables. A missing or unsafe file stops
start-up with a message naming the variable, never a service that half works."""

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, HttpUrl, IPvAnyNetwork, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.auth.keys import check_private_file
from app.common.idempotency import TTL_SECONDS
from app.common.settings import LoopbackUrls, database_checked, load_or_exit

APPLICATION_ID = int.from_bytes(b"AUTH", "big")  # share/auth/schema.sql sets these two
SCHEMA_VERSION = 5


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", frozen=True)

    # The users database. On a LiteFS node this is the file inside the mount.
    database: Path
    # The private JWKS (mode 0600); its first key signs.
    private_jwks: Path
    issuer: str = Field("registrar-auth", min_length=1)
    # Access tokens carry this `aud`; refresh tokens carry `<audience>:refresh`.
    audience: str = Field("registrar", min_length=1)
    access_ttl_seconds: int = Field(20 * 60, gt=0)
    refresh_ttl_seconds: int = Field(7 * 24 * 60 * 60, gt=0)
    # A read replica: log in and refresh only; registration answers 503. LiteFS replicas are also
    # recognised by the `.primary` file LiteFS puts next to the database, but only while they are
    # connected to the primary: so LiteFS replicas set this too (bin/auth-node does).
    read_only: bool = False
    # On a replica: the auth service of the LiteFS primary (e.g. http://127.0.0.1:5100). A login
    # or refresh this replica must refuse is asked there once, so a user who registered a moment
    # ago can sign in here before their row has been replicated (SPEC §4).
    primary_url: HttpUrl | None = None

    # The secret the gateways add to their backend requests (var/gateway.secret). The enrollment
    # service shows it when it asks for an account it does not know yet (GET /internal/users/{id},
    # service to service on loopback, never through a gateway). Unset: that route refuses all.
    gateway_secret_file: Path | None = None

    # The enrollment service's instances (comma-separated base URLs, loopback): the primary
    # announces each account it creates or changes there, so enrollment knows every account as
    # soon as it exists (app/auth/announce.py). Empty: nobody is told; enrollment still asks.
    enroll_urls: LoopbackUrls = ()

    # Abuse limits (app/auth/throttle.py). The counts are shared by every auth node through this
    # file, which must NOT be on LiteFS (a replica's mount is read-only): one plain SQLite file
    # that all auth instances on this host open read-write. Default: throttle.db beside the
    # private JWKS, the auth service's own directory outside LiteFS that every node already
    # shares (var/auth/ in the cluster; each test's own temporary directory in the tests).
    throttle_database: Path | None = None
    # Failed sign-ins within the window (usernames known or not counted alike; the rules are in
    # throttle.py's docstring); one more is 429 until the attempt that caused it leaves the window.
    # Per username from one client address: what a stranger elsewhere cannot use up.
    login_failures_per_username: int = Field(5, gt=0)
    # Per username from all addresses together; past it, only an address with no recent failure
    # for that username may try (once). Unset: 4 times login_failures_per_username.
    login_failures_per_username_all_addresses: int | None = Field(None, gt=0)
    # Per client address over all usernames; a failure later corrected by a success for the same
    # username from the same address is forgiven.
    login_failures_per_address: int = Field(20, gt=0)
    login_window_seconds: int = Field(15 * 60, gt=0)
    # Self-registrations (no registrar token) per client address within the window.
    registrations_per_address: int = Field(10, gt=0)
    registration_window_seconds: int = Field(60 * 60, gt=0)
    # Peers whose X-Forwarded-For is believed, e.g. `127.0.0.1` for the auth gateway (KrakenD) on
    # this host: comma-separated addresses or networks. From any other peer, and by default from
    # every peer, the client address is the peer's own (see throttle.client_address).
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()

    # Every account without an address of its own gets <username>@<mail_domain>.
    mail_domain: str = Field(
        "example.edu", min_length=3, max_length=200, pattern=r"^([a-z0-9-]+\.)+[a-z]{2,63}$"
    )

    # How long the answer to an Idempotency-Key is kept for its retries, on the primary
    # (app/common/idempotency.py); a key older than this is a new key.
    idempotency_ttl_seconds: int = Field(TTL_SECONDS, gt=0)

    @property
    def gateway_secret(self) -> str | None:
        if self.gateway_secret_file is None:
            return None
        return self.gateway_secret_file.read_text().strip() or None

    @property
    def throttle_path(self) -> Path:
        """The shared file of the abuse counts (AUTH_THROTTLE_DATABASE, or its default)."""
        if self.throttle_database is not None:
            return self.throttle_database
        return self.private_jwks.parent / "throttle.db"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("database")
    @classmethod
    def _database_is_ours(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(
                f"{path} does not exist; the LiteFS primary creates it on first start "
                f"(bin/auth-node), or run python -m app.auth.init_db --database {path}"
            )
        return database_checked(path, application_id=APPLICATION_ID, user_version=SCHEMA_VERSION)

    @field_validator("gateway_secret_file")
    @classmethod
    def _secret_is_private(cls, path: Path | None) -> Path | None:
        if path is not None:
            check_private_file(path)
        return path

    @field_validator("private_jwks")
    @classmethod
    def _private_key_is_private(cls, path: Path) -> Path:
        check_private_file(path)
        return path


def load_settings() -> Settings:
    """Read the settings from the environment, or exit with one line per bad variable."""
    return load_or_exit(Settings, "auth service")
