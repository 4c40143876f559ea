"""Loading typed settings so that a bad environment stops a service with one clear message."""

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, NoDecode

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
