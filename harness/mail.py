"""The cluster's mail: Mailpit (bin/mailpit) and the notifier (bin/notifier, supervised as foreman
runs it) on free loopback ports, delivering a running Cluster's notifications outbox. Kept apart
from Cluster so that a module that does not read mail runs no notifier writing to its database;
`MailStack(cluster)` starts beside any Cluster, whose API it leaves as it is."""

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import http
from harness.cluster import Cluster
from harness.procs import ROOT, child_of, free_port, stop, wait_http

MAILPIT = ROOT / ".tools" / "bin" / "mailpit"


class Mailpit:
    """Mailpit on free ports; its mail kept in `dir` across a stop and a start."""

    def __init__(self, dir: Path) -> None:
        self.dir, self.log = dir, dir / "mailpit.log"
        self.smtp_port, self.http_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        # More of Mailpit's own settings (MP_*), taken at the next `start`: MP_MAX_MESSAGES=0
        # keeps every message (Mailpit's default keeps the newest 500).
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {
            "MAILPIT_SMTP_PORT": str(self.smtp_port),
            "MAILPIT_HTTP_PORT": str(self.http_port),
            "MAILPIT_DIR": str(self.dir),
            "MAILPIT_CPU_PRIORITY": "normal",  # as the notifier's beside it (MailStack)
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "bin" / "mailpit")],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.url + "/api/v1/messages", self.proc, status=200, log=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None

    def messages(self) -> list[dict[str, Any]]:
        """Every message Mailpit holds (its API's summaries), oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = http.get(
                f"{self.url}/api/v1/messages", params={"start": len(found), "limit": 500}
            ).json()
            found += page["messages"]
            if not page["messages"] or len(found) >= page["total"]:
                return found[::-1]  # the API answers newest first

    def count(self) -> int:
        """How many messages Mailpit holds."""
        page = http.get(f"{self.url}/api/v1/messages", params={"limit": 1}).json()
        return int(page["total"])

    def delete_all(self) -> None:
        http.delete(f"{self.url}/api/v1/messages").raise_for_status()


class MailStack:
    """Mailpit and the notifier delivering `cluster`'s outbox to it."""

    def __init__(self, cluster: Cluster, **notifier_env: str) -> None:
        self.cluster = cluster
        self.mailpit = Mailpit(cluster.var / "mailpit")
        self.log = cluster.var / "notifier.log"
        self.metrics_port = free_port()
        self.env = {
            "NOTIFIER_DATABASE": str(cluster.enrollment.db),
            "NOTIFIER_AUTH_URLS": ",".join(cluster.enrollment.auth_urls),
            "NOTIFIER_GATEWAY_SECRET_FILE": str(cluster.enrollment.secret_file),
            "NOTIFIER_SMTP_HOST": "127.0.0.1",
            "NOTIFIER_SMTP_PORT": str(self.mailpit.smtp_port),
            "NOTIFIER_METRICS_PORT": str(self.metrics_port),
            # Short waits, so a test sees retries in seconds
            "NOTIFIER_POLL_SECONDS": "0.05",
            "NOTIFIER_BACKOFF_FIRST_SECONDS": "0.2",
            "NOTIFIER_BACKOFF_MAX_SECONDS": "1",
            # At the services' priority: a test's bound on a mail's delay (5 s) is about the
            # notifier, not about how busy the suite's other workers keep the cores.
            "NOTIFIER_CPU_PRIORITY": "normal",
            "NOTIFIER_DEFER_ABOVE_CPU_PRESSURE": "1",  # nor waiting for the cores to calm
            **notifier_env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.mailpit.start()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "bin" / "notifier")],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(f"http://127.0.0.1:{self.metrics_port}/metrics", self.proc, log=self.log)

    def notifier_pid(self, timeout: float = 10.0) -> int:
        """The notifier's own process (the supervisor's child), once it runs."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = child_of(self.proc.pid)
            if pid is not None:
                return pid
            time.sleep(0.02)
        raise TimeoutError("the notifier did not start")

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None
        self.mailpit.stop()
