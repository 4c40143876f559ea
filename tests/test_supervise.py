"""The one restart rule of bin/enrollment and bin/auth-node (bin/lib/supervise.py), with a real
supervisor process and real children killed for real: a small stand-in child serves its pid on
the held socket, so each answer says which child gave it. The rule's times are shortened here;
tests/faults/test_enrollment_restart.py and tests/faults/test_auth_node_restart.py run the two
real scripts with the real rule."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from bin.lib.supervise import RULE, Rule
from harness.procs import ROOT, free_port, gone

# The rule of these tests: a quick death is one within QUICK s of starting; the 3rd quick death
# in a row gives up; pauses of 0.1 s, then 0.2 s; 1 s to stop before being killed.
QUICK, GRACE = 1.0, 1.0

SUPERVISOR = """
import sys
sys.path.insert(0, sys.argv[1])
from bin.lib.supervise import Rule, listen, supervise
port, quick, grace, child, mode = sys.argv[2:7]
listener = listen(int(port))
rule = Rule(quick_seconds=float(quick), quick_deaths=3, first_pause=0.1, stop_grace=float(grace))
fd = listener.fileno()
sys.exit(supervise(
    [sys.executable, "-c", child, str(fd), mode], name="test child", pass_fds=(fd,),
    after_exit=lambda: print("after exit", flush=True), rule=rule,
))
"""

CHILD = """
import os, signal, socket, subprocess, sys, time
fd, mode = int(sys.argv[1]), sys.argv[2]
if mode == "crash":
    sys.exit(3)
if mode == "brief":  # lives longer than a quick death, but not long
    time.sleep(1.3)
    sys.exit(5)

def stop(signum, _frame):
    print(f"child {os.getpid()} got {signal.Signals(signum).name}", flush=True)
    time.sleep(0.3)  # a second signal would be seen meanwhile
    sys.exit(0)

if mode in ("stubborn", "leaves-a-helper"):
    helper = subprocess.Popen(["sleep", "60"])  # in the child's process group
    print(f"helper {helper.pid}", flush=True)
handler = signal.SIG_IGN if mode == "stubborn" else stop
signal.signal(signal.SIGTERM, handler)
signal.signal(signal.SIGINT, handler)
listener = socket.socket(fileno=fd)
print("serving", flush=True)
while True:
    connection, _ = listener.accept()
    connection.sendall(f"{os.getpid()}\\n".encode())
    connection.close()
"""


class Supervisor:
    def __init__(self, tmp_path: Path, mode: str, quick: float = QUICK) -> None:
        self.port = free_port()
        self.log = tmp_path / "supervisor.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SUPERVISOR, str(ROOT), str(self.port), str(quick),
                 str(GRACE), CHILD, mode],
                stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group to Ctrl-C, as a terminal would
            )  # fmt: skip
        # Until the supervisor has bound its socket, a connection is refused.
        self.wait_until(lambda: self.proc.poll() is not None or self._listening())

    def _listening(self) -> bool:
        return any(
            c.laddr.port == self.port and c.status == psutil.CONN_LISTEN
            for c in psutil.Process(self.proc.pid).net_connections()
        )

    def text(self) -> str:
        return self.log.read_text()

    def ask(self, timeout: float = 10.0) -> int:
        """The pid of the child answering a new connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            return int(conn.makefile().readline())

    def wait_until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out\n{self.text()}"
            time.sleep(0.01)

    def helper(self) -> int:
        self.wait_until(lambda: "helper " in self.text())
        return int(self.text().split("helper ")[-1].split()[0])

    def close(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    os.killpg(child.pid, signal.SIGKILL)
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start(tmp_path) -> Iterator:
    started: list[Supervisor] = []

    def start(mode: str, quick: float = QUICK) -> Supervisor:
        started.append(Supervisor(tmp_path, mode, quick))
        return started[-1]

    yield start
    for supervisor in started:
        supervisor.close()


def test_the_rule_restarts_at_once_after_a_long_life_and_backs_off_after_quick_deaths():
    assert [RULE.pause(k) for k in range(5)] == [0, 0.25, 0.5, 1, 2]
    assert (RULE.quick_seconds, RULE.quick_deaths, RULE.stop_grace) == (10, 5, 4)
    assert Rule(first_pause=0.1).pause(3) == pytest.approx(0.4)


def test_a_killed_child_is_restarted_at_once_and_a_connection_made_meanwhile_waits(start):
    supervisor = start("serve", quick=0.5)
    first = supervisor.ask()
    time.sleep(0.6)  # no longer a quick death: restarted at once
    os.kill(first, signal.SIGKILL)
    supervisor.wait_until(lambda: gone(first))

    asked = time.monotonic()
    second = supervisor.ask()  # sent while no child runs: waits on the held socket
    took = time.monotonic() - asked

    assert second != first
    assert took < 2.0, took
    log = supervisor.text()
    assert "test child was killed by SIGKILL after " in log
    assert "restarting now" in log and "after exit" in log
    assert supervisor.proc.poll() is None


def test_quick_deaths_in_a_row_back_off_then_give_up_with_the_childs_status(start):
    supervisor = start("crash")
    started = time.monotonic()
    assert supervisor.proc.wait(timeout=10) == 3
    took = time.monotonic() - started

    log = supervisor.text()
    assert log.count("after exit") == 3  # three children, each cleaned up after
    assert "exited with status 3 after" in log
    assert "restarting in 0.1 s" in log and "restarting in 0.2 s" in log
    assert "3 deaths in a row, each within 1 s of its start; giving up" in log
    assert took >= 0.3


def test_a_child_that_lived_past_the_quick_time_starts_the_count_again(start):
    supervisor = start("brief")  # each child lives 1.3 s, more than QUICK: never a quick death
    supervisor.wait_until(lambda: supervisor.text().count("after exit") >= 4, timeout=15)
    assert supervisor.proc.poll() is None
    assert "giving up" not in supervisor.text()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.proc.wait(timeout=5) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_stop_signal_reaches_the_child_once_and_nothing_is_restarted(start, signum):
    """The child runs in a session of its own: a Ctrl-C at a terminal (SIGINT to the whole
    foreground process group) reaches it once, passed on by the supervisor, never twice."""
    supervisor = start("serve")
    child = supervisor.ask()
    assert os.getsid(child) == child

    os.killpg(supervisor.proc.pid, signum)  # as a terminal's Ctrl-C does, to the group

    assert supervisor.proc.wait(timeout=5) == 0
    log = supervisor.text()
    assert log.count(f"child {child} got") == 1, log
    assert f"child {child} got {signal.Signals(signum).name}" in log
    assert "restarting" not in log
    assert gone(child)


def test_a_child_that_does_not_stop_is_killed_with_what_it_started(start):
    supervisor = start("stubborn")
    child = supervisor.ask()
    helper = supervisor.helper()

    asked = time.monotonic()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.proc.wait(timeout=5) == 0
    took = time.monotonic() - asked

    assert GRACE <= took < GRACE + 2
    assert "did not stop within 1 s; killing it and what it started" in supervisor.text()
    supervisor.wait_until(lambda: gone(child) and gone(helper))


def test_what_a_dead_child_left_behind_is_stopped_before_the_next_starts(start):
    supervisor = start("leaves-a-helper")
    child = supervisor.ask()
    helper = supervisor.helper()

    os.kill(child, signal.SIGKILL)

    supervisor.wait_until(lambda: gone(helper))
    assert supervisor.ask() != child
