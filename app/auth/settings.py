"""The auth service's settings, from AUTH_* environment variables. A missing or unsafe file stops
start-up with a message naming the variable, never a service that half works."""

from pathlib import Path

from pydantic import Field, HttpUrl, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.auth.keys import check_private_file


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

    @field_validator("database")
    @classmethod
    def _database_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(
                f"{path} does not exist; the LiteFS primary creates it on first start "
                f"(bin/auth-node), or run python -m app.auth.init_db --database {path}"
            )
        return path

    @field_validator("private_jwks")
    @classmethod
    def _private_key_is_private(cls, path: Path) -> Path:
        check_private_file(path)
        return path


def load_settings() -> Settings:
    """Read the settings from the environment, or exit with one line per bad variable."""
    try:
        return Settings()  # type: ignore[call-arg]  # the required values come from the env
    except ValidationError as exc:
        problems = [
            f"AUTH_{'_'.join(str(part) for part in err['loc']).upper()}: "
            + ("not set" if err["type"] == "missing" else err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise SystemExit("auth service cannot start:\n  " + "\n  ".join(problems)) from None
