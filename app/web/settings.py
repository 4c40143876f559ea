"""Typed settings of the web app's server, read from WEB_* environment variables."""

from functools import lru_cache
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.common.settings import load_or_exit


def _api_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not an http(s) base URL such as http://127.0.0.1:5500/api")
    return url.rstrip("/")


ApiBase = Annotated[str, AfterValidator(_api_base)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEB_", frozen=True)

    enroll_api: ApiBase = "http://127.0.0.1:5500/enroll_api"
    """Where browsers reach the enroll gateway (its endpoint prefix included)."""

    auth_api: ApiBase = "http://127.0.0.1:5400/auth_api"
    """Where browsers reach the auth gateway (its endpoint prefix included)."""

    @property
    def api_origins(self) -> list[str]:
        """The origins the pages may call: the two gateways (for the CSP's connect-src)."""
        return sorted({_origin(self.enroll_api), _origin(self.auth_api)})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@lru_cache
def get_settings() -> Settings:
    """Settings from the WEB_* environment, or exit with one line per bad variable."""
    return load_or_exit(Settings, "the web app")
