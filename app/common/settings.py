"""Loading typed settings so that a bad environment stops a service with one clear message, and
the checks both services make of the files their settings name."""

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, NoDecode

from app.common.db import WrongSchema, check_schema

S = TypeVar("S", bound=BaseSettings)


def load_or_exit(settings_class: type[S], service: str) -> S:
    """Read settings from the environment, or exit naming each bad variable on its own line."""
    prefix = settings_class.model_config.get("env_prefix", "")
    try:
        return settings_class()
    except ValidationError as exc:
        problems = [
            f"{prefix}{'_'.join(str(part) for part in err['loc']).upper()}: "
            + ("not set" if err["type"] == "missing" else err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise SystemExit(f"{service} cannot start:\n  " + "\n  ".join(problems)) from None


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    return value


def _loopback_http(urls: tuple[str, ...]) -> tuple[str, ...]:
    for url in urls:
        if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"{url!r}: the other service is called on loopback only")
    return urls


# Base URLs of another service of this installation, comma-separated in the environment, each on
# loopback (services talk to each other on this host only, with the gateway secret).
LoopbackUrls = Annotated[
    tuple[str, ...],
    NoDecode,
    BeforeValidator(_comma_separated),
    AfterValidator(_loopback_http),
]


def _plain_http(urls: tuple[str, ...]) -> tuple[str, ...]:
    for url in urls:
        if not url.startswith("http://"):
            raise ValueError(f"{url!r}: a base URL such as http://198.18.0.1:5000 is expected")
    return urls


# Base URLs of instances on other hosts of the installation (bin/multihost), comma-separated.
HttpUrls = Annotated[
    tuple[str, ...],
    NoDecode,
    BeforeValidator(_comma_separated),
    AfterValidator(_plain_http),
]


# Checks of the files a setting names, for a settings class's field validators: each returns the
# path, or raises ValueError with a sentence that says how to mend it (`load_or_exit` prints it).


def database_checked(path: Path, *, application_id: int, user_version: int) -> Path:
    """The service's own database at the schema version this code knows (`check_schema`)."""
    try:
        check_schema(path, application_id=application_id, user_version=user_version)
    except WrongSchema as exc:
        raise ValueError(str(exc)) from exc
    return path


def secret_file_checked(path: Path) -> Path:
    """A file holding a secret (the gateway's): there, readable by its owner only, and long enough
    not to be guessed."""
    if not path.is_file():
        raise ValueError(f"gateway secret file {path} does not exist; run bin/init.sh first")
    if path.stat().st_mode & 0o077:
        raise ValueError(f"gateway secret file {path} is readable by others; chmod 600 it")
    if len(path.read_text().strip()) < 32:
        raise ValueError(f"gateway secret in {path} is too short (32 characters at least)")
    return path
