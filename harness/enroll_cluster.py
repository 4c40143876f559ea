"""Enrollment instances on one database file, as bin/enrollment runs them (uvicorn on
127.0.0.1), on free ports in a directory laid out like var/."""

import secrets
import subprocess
from pathlib import Path

from app.enrollment.init_db import init_db
from harness.procs import free_port, start_uvicorn, stop, wait_http


def write_secret(path: Path) -> Path:
    """A fresh gateway secret at `path` (mode 0600), as bin/init.sh makes var/gateway.secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o600)
    return path


class EnrollmentCluster:
    """`instances` enrollment instances sharing VAR/enroll/enroll.db (seeded), trusting the
    gateway secret in `secret_file`."""

    def __init__(self, var: Path, secret_file: Path, instances: int = 3) -> None:
        self.dir = var / "enroll"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "enroll.db"
        init_db(self.db)
        self.secret_file = secret_file
        self.secret = secret_file.read_text()
        self.ports = [free_port() for _ in range(instances)]
        self.procs: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def log(self, index: int) -> Path:
        return self.dir / f"enrollment-{index}.log"

    def start(self) -> None:
        env = {
            "ENROLL_DATABASE": str(self.db),
            "ENROLL_GATEWAY_SECRET_FILE": str(self.secret_file),
        }
        for i, port in enumerate(self.ports):
            self.procs.append(
                start_uvicorn(
                    "app.enrollment.main:create_app",
                    port,
                    {**env, "ENROLL_INSTANCE": f"enrollment-{i}"},
                    self.log(i),
                )
            )
        for url, proc in zip(self.urls, self.procs, strict=True):
            wait_http(url + "/health", proc)

    def stop(self) -> None:
        stop(self.procs)
        self.procs = []
