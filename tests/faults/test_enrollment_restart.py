"""bin/enrollment (the Procfile's enrollment process) brings a dead instance back (foreman would
otherwise stop the whole cluster when one process exits), on the listening socket it holds, so
connections made meanwhile wait for it instead of being refused."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from app.enrollment.init_db import init_db
from harness import http
from harness.procs import ROOT, child_of, free_port, gone, wait_http
from tests.enrollment.helpers import make_secret_file


class Supervised(NamedTuple):
    supervisor: subprocess.Popen
    url: str
    log: Path


@pytest.fixture
def instance(tmp_path) -> Iterator[Supervised]:
    """One instance started as the Procfile starts it, answering; stopped at the end."""
    db = tmp_path / "enroll.db"
    init_db(db)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "ENROLL_DATABASE": str(db),
        "ENROLL_GATEWAY_SECRET_FILE": str(make_secret_file(tmp_path)),
    }
    log_path = tmp_path / "enrollment.log"
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen(
            [str(ROOT / "bin" / "enrollment")], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/health"
    try:
        wait_http(url, supervisor)
        yield Supervised(supervisor, url, log_path)
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(timeout=15)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait()


def test_a_killed_instance_is_restarted_and_sigterm_stops_it_for_good(instance: Supervised):
    first = child_of(instance.supervisor.pid)
    assert first is not None
    os.kill(first, signal.SIGKILL)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        second = child_of(instance.supervisor.pid)
        try:
            if second not in (None, first) and http.get(instance.url, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("the killed instance was not brought back")
    assert "restarting" in instance.log.read_text()

    instance.supervisor.send_signal(signal.SIGTERM)
    assert instance.supervisor.wait(timeout=15) == 0
    assert gone(second)


def test_requests_sent_while_the_instance_restarts_wait_and_are_answered(instance: Supervised):
    """bin/enrollment holds the listening socket: while uvicorn is dead, a new connection waits
    in the kernel's queue for the next one, instead of being refused."""
    first = child_of(instance.supervisor.pid)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    while not gone(first):
        time.sleep(0.001)

    answers = [http.get(instance.url, timeout=15).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    assert child_of(instance.supervisor.pid) not in (None, first)
