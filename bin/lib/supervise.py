"""The one restart rule of the cluster's supervised processes: `bin/enrollment` (uvicorn) and
`bin/auth-node` (LiteFS, which runs the auth instance). Standard library only: it runs under
whichever python3 started the bin script.

foreman starts every process of the Procfile and stops the whole cluster when any one exits, and
has no restart of its own. So each of those two binds its service's listening socket once, holds
it for as long as it runs, and keeps one child running on it (`supervise`):

- The child runs in a session of its own. A signal reaches it once, through the supervisor (a
  Ctrl-C at foreman's terminal would otherwise reach it twice, and uvicorn takes a second SIGINT
  as "stop now, drop what you are answering"), and what it starts can be stopped with it.
- When it dies, whatever it left in its process group gets SIGTERM (a killed LiteFS leaves its
  auth instance behind), `after_exit` runs (bin/auth-node unmounts the dead FUSE mount), and a
  new child starts on the same socket. Meanwhile new connections wait in the kernel's accept
  queue on the held socket instead of being refused.
- When to start it again (`Rule`): at once if it had run for `quick_seconds` (10 s) or more;
  after the k-th death in a row within `quick_seconds` of its start, after a pause of
  `first_pause` (0.25 s) doubled k-1 times; at the `quick_deaths` (5th) such death in a row it
  gives up and exits with the child's status (then foreman stops the cluster and says why,
  instead of a process that can never start being retried forever).
- SIGINT/SIGTERM: passed on to the child, which has `stop_grace` (4 s, within foreman's `-t 10`)
  to stop; then its whole process group is killed. The supervisor then exits 0.

Why not a library: gunicorn's arbiter holds the sockets and forks new workers when they die,
but a worker is a fork of the arbiter running a Python app in-process, never another program such
as LiteFS (a Go binary that itself execs the auth instance); and it restarts a crashing worker
forever without a pause, halting only on a worker's boot error. uvicorn's `--workers` supervisor
restarts only uvicorn workers, also without a pause or a limit. supervisord and circus would be a
second process manager under foreman, with configs and logs of their own.
"""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKLOG = 2048  # connections that may wait while the child restarts


@dataclass(frozen=True)
class Rule:
    quick_seconds: float = 10.0  # a child that dies sooner after its start died "quickly"
    quick_deaths: int = 5  # quick deaths in a row that make the supervisor give up
    first_pause: float = 0.25  # before the start after the first quick death; then doubled
    stop_grace: float = 4.0  # from passing SIGINT/SIGTERM on to killing the child's group

    def pause(self, quick_deaths_in_a_row: int) -> float:
        """Seconds to wait before starting the child again."""
        if quick_deaths_in_a_row == 0:
            return 0.0
        return self.first_pause * 2.0 ** (quick_deaths_in_a_row - 1)


RULE = Rule()


def project_python() -> str:
    """The project's Python (.venv), which has the services' packages; else this one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port`, for children to serve on (uvicorn's `--fd`).

    BACKEND_LISTEN_HOST names another address: bin/multihost sets 0.0.0.0 inside each test
    host's network namespace, whose only interfaces are loopback and the host's own 198.18.0.N,
    so that the other hosts reach its primaries (harness/multihost.py).

    TCP_NODELAY is set here because uvicorn takes a socket given by --fd for a Unix one, so
    neither it nor the event loop sets it on what it accepts, and accepted sockets inherit it
    from here: without it, small answers waited on Nagle and delayed ACKs, about 40 ms each."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host = os.environ.get("BACKEND_LISTEN_HOST") or "127.0.0.1"
    try:
        listener.bind((host, port))
    except OSError as exc:
        sys.exit(f"cannot listen on {host}:{port}: {exc.strerror} (is it running already?)")
    listener.listen(BACKLOG)
    return listener


def supervise(
    command: Sequence[str],
    *,
    name: str,
    pass_fds: Sequence[int] = (),
    after_exit: Callable[[], object] = lambda: None,
    rule: Rule = RULE,
) -> int:
    """Run `command` (in ROOT, with this process's environment and the descriptors `pass_fds`)
    by the rule above until SIGINT/SIGTERM (then return 0), or until it gives up (then return
    the child's exit status, or 1). `name` says what the log lines are about."""
    return _Supervisor(list(command), name, tuple(pass_fds), after_exit, rule).run()


def _log(message: str, level: str = "WARNING") -> None:
    """One JSON line on stderr, in the shape of the services' own log lines (etc/logging.json:
    time, level, logger, message), since the supervisor writes into the same log as its child."""
    now = datetime.now().astimezone().isoformat(timespec="milliseconds")
    line = {"time": now, "level": level, "name": "supervise", "message": message}
    print(json.dumps(line), file=sys.stderr, flush=True)


def _exit_status(returncode: int) -> int:
    """As a shell reports it: 128 + N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class _Supervisor:
    def __init__(
        self,
        command: list[str],
        name: str,
        pass_fds: tuple[int, ...],
        after_exit: Callable[[], object],
        rule: Rule,
    ) -> None:
        self.command, self.name, self.pass_fds = command, name, pass_fds
        self.after_exit, self.rule = after_exit, rule
        self.stop_signal: int | None = None
        # The signal handlers only note the signal; the loop below acts on it. The wakeup pipe
        # ends its wait at once (a wait in select() is otherwise resumed after the handler).
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        quick = 0
        while self.stop_signal is None:
            started = time.monotonic()
            child = subprocess.Popen(
                self.command, cwd=ROOT, pass_fds=self.pass_fds, start_new_session=True
            )
            returncode = self._wait(child)
            lived = time.monotonic() - started
            _signal_group(child.pid, signal.SIGTERM)  # what it left behind
            self.after_exit()
            if self.stop_signal is not None:
                break
            quick = quick + 1 if lived < self.rule.quick_seconds else 0
            if quick >= self.rule.quick_deaths:
                _log(
                    f"{self.name} {_describe(returncode)}: {quick} deaths in a row, each "
                    f"within {self.rule.quick_seconds:g} s of its start; giving up",
                    "ERROR",
                )
                return _exit_status(returncode) or 1
            pause = self.rule.pause(quick)
            when = f"in {pause:g} s" if pause else "now"
            _log(
                f"{self.name} {_describe(returncode)} after {lived:.1f} s; restarting {when} "
                "(new connections wait on the held socket meanwhile)"
            )
            self._sleep(pause)
        return 0

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for `child` to end, passing a stop signal on to it, and killing its process
        group if it has not stopped `stop_grace` seconds after that."""
        pidfd = os.pidfd_open(child.pid)
        passed_on = False
        kill_at: float | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            selector.register(self.wake_r, selectors.EVENT_READ)
            try:
                while child.poll() is None:
                    if self.stop_signal is not None and not passed_on:
                        passed_on = True
                        with suppress(ProcessLookupError):
                            child.send_signal(self.stop_signal)
                        kill_at = time.monotonic() + self.rule.stop_grace
                    if kill_at is not None and time.monotonic() >= kill_at:
                        _log(
                            f"{self.name} did not stop within {self.rule.stop_grace:g} s; "
                            "killing it and what it started"
                        )
                        _signal_group(child.pid, signal.SIGKILL)
                        kill_at = None
                    timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
                    selector.select(timeout)
                    self._drain()
            finally:
                os.close(pidfd)
        return child.returncode

    def _sleep(self, seconds: float) -> None:
        """Sleep, but not past a stop signal."""
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self.wake_r, selectors.EVENT_READ)
            while self.stop_signal is None and (left := deadline - time.monotonic()) > 0:
                selector.select(left)
                self._drain()

    def _drain(self) -> None:
        with suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass
