"""The auth service's settings, from AUTH_* environment variables. A missing or unsafe file stops
start-up with a message naming the variable, never a service that half works."""

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
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
    # recognised without it, by the `.primary` file LiteFS puts next to the database.
    read_only: bool = False

    @field_validator("database")
    @classmethod
    def _database_exists(cls, path: Path) -> Path:
        if not path.is_file():
            raise ValueError(f"{path} does not exist; run bin/init.sh to create the users database")
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
