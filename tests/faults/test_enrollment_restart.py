"""bin/enrollment (the Procfile's enrollment process) brings a dead instance back (foreman would
otherwise stop the whole cluster when one process exits), on the listening socket it holds, so
connections made meanwhile wait for it instead of being refused."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from app.enrollment.init_db import init_db
from harness.procs import ROOT, free_port, wait_http
from tests.enrollment.helpers import make_secret_file


def uvicorn_child(wrapper: int) -> int | None:
    path = Path(f"/proc/{wrapper}/task/{wrapper}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    return children[0] if children else None


def test_a_killed_instance_is_restarted_and_sigterm_stops_it_for_good(tmp_path):
    db = tmp_path / "enroll.db"
    init_db(db)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "ENROLL_DATABASE": str(db),
        "ENROLL_GATEWAY_SECRET_FILE": str(make_secret_file(tmp_path)),
    }
    with (tmp_path / "enrollment.log").open("ab") as log:
        wrapper = subprocess.Popen(
            [str(ROOT / "bin" / "enrollment")], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/health"
    try:
        wait_http(url, wrapper)
        first = uvicorn_child(wrapper.pid)
        assert first is not None
        os.kill(first, signal.SIGKILL)

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            second = uvicorn_child(wrapper.pid)
            try:
                if second not in (None, first) and httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the killed instance was not brought back")
        assert "restarting" in (tmp_path / "enrollment.log").read_text()

        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=15) == 0
        assert (
            not Path(f"/proc/{second}").exists()
            or "zombie" in Path(f"/proc/{second}/status").read_text()
        )
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()


def test_requests_sent_while_the_instance_restarts_wait_and_are_answered(tmp_path):
    """bin/enrollment holds the listening socket: while uvicorn is dead, a new connection waits
    in the kernel's queue for the next one, instead of being refused."""
    db = tmp_path / "enroll.db"
    init_db(db)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "ENROLL_DATABASE": str(db),
        "ENROLL_GATEWAY_SECRET_FILE": str(make_secret_file(tmp_path)),
    }
    with (tmp_path / "enrollment.log").open("ab") as log:
        supervisor = subprocess.Popen(
            [str(ROOT / "bin" / "enrollment")], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/health"
    try:
        wait_http(url, supervisor)
        first = uvicorn_child(supervisor.pid)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        while Path(f"/proc/{first}").exists() and "zombie" not in _state(first):
            time.sleep(0.001)

        answers = [httpx.get(url, timeout=15).status_code for _ in range(3)]

        assert answers == [200, 200, 200]
        assert uvicorn_child(supervisor.pid) not in (None, first)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=15)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return "gone"
