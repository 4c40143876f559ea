"""Loading typed settings so that a bad environment stops a service with one clear message."""

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

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
