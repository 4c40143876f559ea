"""Start real server processes on free loopback ports for tests, and stop them again."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import psutil

from harness import http

ROOT = Path(__file__).resolve().parents[1]


# Every port handed out by this process: the kernel may offer a port again while the process it
# was meant for has not bound it yet, and two servers of one cluster would then share it.
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def log_tail(log: Path, lines: int = 40) -> str:
    """The last lines of a process's log, to put in a failure message."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"--- last lines of {log.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def wait_http(
    url: str,
    proc: subprocess.Popen | None = None,
    timeout: float = 30.0,
    *,
    status: int | None = None,
    log: Path | None = None,
) -> None:
    """Wait until `url` answers (with `status`, or any status), or fail, with the end of `log`
    when given. Asking for a status guards against another server answering on that port."""
    deadline = time.monotonic() + timeout
    tail = (lambda: "\n" + log_tail(log)) if log is not None else (lambda: "")
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode} before {url} answered{tail()}"
            )
        try:
            answer = http.get(url, timeout=1.0)
            if status is None or answer.status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s{tail()}")


def start_uvicorn(factory: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One uvicorn process serving `factory` on 127.0.0.1:`port`, output to `log`."""
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie its parent has not reaped yet has)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def child_of(pid: int) -> int | None:
    """The pid of the one child of process `pid` (a supervisor's: bin/enrollment's uvicorn,
    bin/auth-node's LiteFS); None while it has none, or once `pid` has ended."""
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return None
    return children[0].pid if children else None


def cpu_seconds(*, pids: Iterable[int] = (), sessions: Iterable[int] = ()) -> float:
    """CPU time (user + system) used so far by the processes `pids` and by every process of the
    `sessions` (a gateway is entr and KrakenD in a session of their own). A process that has
    ended is not counted: take the difference over a stretch in which none ends."""
    pids, sessions = set(pids), set(sessions)
    total = 0.0
    for proc in psutil.process_iter():
        try:
            if proc.pid in pids or (sessions and os.getsid(proc.pid) in sessions):
                times = proc.cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue  # it ended meanwhile
    return total


def cpu_and_switches(pids: Iterable[int]) -> tuple[float, float, int, int]:
    """User and system CPU seconds, and voluntary (waiting for work) and involuntary (preempted)
    context switches, used so far by the processes `pids` together."""
    user = system = 0.0
    voluntary = involuntary = 0
    for pid in pids:
        proc = psutil.Process(pid)
        with proc.oneshot():
            times, switches = proc.cpu_times(), proc.num_ctx_switches()
        user += times.user
        system += times.system
        voluntary += switches.voluntary
        involuntary += switches.involuntary
    return user, system, voluntary, involuntary
