"""KrakenD gateways for tests and benchmarks.

`Gateway` starts one exactly as the Procfile does (`bin/gateway enroll|auth`: KrakenD under entr,
flexible configuration from etc/<name>/ and etc/krakend/, USAGE_DISABLE=1), with the per-run
values (ports, backends, JWKS, secret) in its environment. `render` has KrakenD itself render and
check a config (`krakend check`, FC_OUT), and `Gateway.plain` runs a rendered config as it is.
"""

import json
import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

from harness.procs import ROOT, log_tail, wait_http

KRAKEND = ROOT / ".tools" / "bin" / "krakend"
# The built Go plugins (bin/lib.sh, ensure_krakend_plugins), by absolute path: the config's
# "plugin" folder (etc/krakend/templates/service.tmpl) whatever directory KrakenD runs in.
PLUGINS = ROOT / ".tools" / "krakend-plugins"
READY_TIMEOUT = 30.0


def clean_environ() -> dict[str, str]:
    """This process's environment without a developer's GATEWAY_*, FC_* or KRAKEND* variables,
    which would change what a gateway renders; and never reporting usage to krakend.io."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "FC_", "KRAKEND"))}
    return env | {"USAGE_DISABLE": "1"}


def render(name: str, env: dict[str, str], out: Path) -> subprocess.CompletedProcess:
    """Render and check etc/<name>/krakend.tmpl with KrakenD (`krakend check --test-gin-routes
    --debug`, which also mounts every endpoint on a real gin router for a second and so refuses
    conflicting paths); the rendered config is written to `out` when the check passes."""
    if not KRAKEND.exists():
        raise FileNotFoundError(f"{KRAKEND} is missing: ./bin/test and ./bin/start build it")
    full_env = clean_environ() | {
        "FC_ENABLE": "1",
        "FC_SETTINGS": f"etc/{name}/settings",
        "FC_TEMPLATES": "etc/krakend/templates",
        "FC_OUT": str(out),
        "GATEWAY_PLUGIN_DIR": str(PLUGINS),
        **env,
    }
    command = [str(KRAKEND), "check", "--test-gin-routes", "--debug"]
    return subprocess.run(
        [*command, "--config", f"etc/{name}/krakend.tmpl"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
    )


class Gateway:
    def __init__(self, name: str, var: Path, port: int, env: dict[str, str]) -> None:
        self.name, self.var, self.port = name, var, port
        self.env = env
        self.command = [str(ROOT / "bin" / "gateway"), name]
        self.log = var / f"{name}-gateway.log"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def plain(cls, name: str, var: Path, config: dict) -> "Gateway":
        """KrakenD running `config` (a rendered config) as it is: `krakend run -c FILE`."""
        path = var / f"{name}-krakend.json"
        path.write_text(json.dumps(config))
        gateway = cls(name, var, config["port"], {})
        gateway.command = [str(KRAKEND), "run", "--config", str(path)]
        return gateway

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not KRAKEND.exists():
            raise FileNotFoundError(f"{KRAKEND} is missing: ./bin/test and ./bin/start build it")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=clean_environ()
                | {"VAR_DIR": str(self.var), "GATEWAY_PLUGIN_DIR": str(PLUGINS), **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # entr and KrakenD: stopped together by stop()
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        # The gateway's own health endpoint (etc/krakend/templates/service.tmpl, "health").
        wait_http(self.url + "/health", self.proc, READY_TIMEOUT, status=200, log=self.log)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines)
