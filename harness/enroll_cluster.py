"""Enrollment instances on one database file, each started as the Procfile starts it
(bin/enrollment: uvicorn on 127.0.0.1 on a socket its supervisor holds), on free ports in a
directory laid out like var/."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from app.enrollment.init_db import init_db
from harness.procs import ROOT, child_of, free_port, stop, wait_http


def write_secret(path: Path) -> Path:
    """A fresh gateway secret at `path` (mode 0600), as bin/init.sh makes var/gateway.secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o600)
    return path


class EnrollmentCluster:
    """`instances` enrollment instances sharing VAR/enroll/enroll.db (seeded), trusting the
    gateway secret in `secret_file`."""

    def __init__(
        self,
        var: Path,
        secret_file: Path,
        instances: int = 3,
        auth_urls: list[str] | None = None,
    ) -> None:
        self.dir = var / "enroll"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "enroll.db"
        init_db(self.db)
        self.secret_file = secret_file
        self.secret = secret_file.read_text()
        self.ports = [free_port() for _ in range(instances)]
        self.auth_urls = auth_urls or []  # ENROLL_AUTH_URLS: the primary's first
        self.env: dict[str, str] = {}  # more ENROLL_* settings, taken at the next `start`
        self.procs: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def log(self, index: int) -> Path:
        return self.dir / f"enrollment-{index}.log"

    def start(self, tree: Path = ROOT) -> None:
        """Each instance as the Procfile runs it: bin/enrollment, which holds the listening
        socket and restarts uvicorn on it when it dies. `tree`: the checkout whose code runs
        (another revision's worktree, for bench/ab.py)."""
        env = {
            **os.environ,
            "ENROLL_DATABASE": str(self.db),
            "ENROLL_GATEWAY_SECRET_FILE": str(self.secret_file),
            "PYTHONPATH": str(tree),
            "ENROLL_AUTH_URLS": ",".join(self.auth_urls),
            **self.env,
        }
        for i, port in enumerate(self.ports):
            with self.log(i).open("ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        # This interpreter: another revision's worktree has no .venv of its own.
                        [sys.executable, str(tree / "bin" / "enrollment")],
                        cwd=tree,
                        env={**env, "PORT": str(port), "ENROLL_INSTANCE": f"enrollment-{i}"},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        for url, proc in zip(self.urls, self.procs, strict=True):
            wait_http(url + "/health", proc, status=200)

    def serving_pid(self, index: int) -> int | None:
        """The pid of the uvicorn process serving instance `index` now (bin/enrollment's child)."""
        return child_of(self.procs[index].pid)

    def stop(self) -> None:
        stop(self.procs)
        self.procs = []
