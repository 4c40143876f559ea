"""bin/auth-node (the Procfile's auth-* processes) keeps LiteFS, and the auth instance LiteFS runs,
alive by the same rule as bin/enrollment (bin/lib/supervise.py), on the listening socket it
holds: a crashed auth instance or LiteFS is started again and connections made meanwhile wait;
five quick deaths in a row and it gives up; SIGTERM stops it and leaves nothing mounted. A real
LiteFS primary node, killed for real (root and /dev/fuse, as tests/e2e)."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import http
from harness.auth_cluster import LITEFS, AuthCluster, AuthNode, mounted, wait_for
from harness.procs import child_of, gone

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path) -> Iterator[AuthCluster]:
    """The LiteFS primary alone (it needs no replica to serve), answering."""
    if os.geteuid() != 0 or not Path("/dev/fuse").exists():
        pytest.skip("LiteFS needs root and /dev/fuse to mount its FUSE file system")
    if not LITEFS.exists():
        pytest.fail(f"{LITEFS} is missing: run ./bin/test or ./bin/start, which build LiteFS")
    cluster = AuthCluster.create(tmp_path)
    try:
        cluster.start("primary")
        yield cluster
    finally:
        cluster.close()


def jwks(node: AuthNode) -> int:
    return http.get(node.url + "/.well-known/jwks.json", timeout=30).status_code


def litefs_pid(node: AuthNode) -> int | None:
    """bin/auth-node's child, LiteFS; None while there is none, or once the node has ended."""
    assert node.proc is not None
    return child_of(node.proc.pid)


def test_a_killed_auth_instance_is_started_again_and_requests_sent_meanwhile_wait(cluster):
    node = cluster.primary
    first = cluster.serving_pid(node.name)
    assert first is not None

    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: gone(first), 5)
    asked = time.monotonic()
    status = jwks(node)  # no auth instance runs now: this waits on the socket bin/auth-node holds
    took = time.monotonic() - asked

    print(f"auth instance killed: the next request answered after {took:.2f} s")
    assert status == 200
    assert cluster.serving_pid(node.name) not in (None, first)
    assert "LiteFS exited with status 255" in node.log.read_text()
    assert "restarting" in node.log.read_text()
    assert node.running
    cluster.stop(node.name)  # SIGTERM: exits, leaves nothing mounted


def test_a_killed_litefs_is_unmounted_and_started_again(cluster):
    node = cluster.primary
    litefs, instance = litefs_pid(node), cluster.serving_pid(node.name)
    assert litefs is not None and instance is not None

    os.kill(litefs, signal.SIGKILL)

    assert wait_for(lambda: gone(instance), 5), "the auth instance LiteFS left was not stopped"
    assert jwks(node) == 200
    assert litefs_pid(node) not in (None, litefs)
    assert "LiteFS was killed by SIGKILL" in node.log.read_text()
    assert mounted(node.mount)
    cluster.stop(node.name)


def test_five_quick_deaths_in_a_row_and_it_gives_up_leaving_nothing_mounted(cluster):
    node = cluster.primary
    assert node.proc is not None

    def ended() -> bool:
        return node.proc.poll() is not None

    killed: list[int] = []
    while not ended() and len(killed) < 10:
        # Each LiteFS killed as soon as it serves again: dead within 10 s of its start.
        wait_for(lambda: ended() or cluster.serving_pid(node.name) is not None, 20)
        litefs = litefs_pid(node)
        if litefs is not None:
            os.kill(litefs, signal.SIGKILL)
            killed.append(litefs)
            wait_for(lambda: ended() or litefs_pid(node) not in killed, 20)

    log = node.log.read_text()
    assert node.proc.wait(timeout=30) == 128 + signal.SIGKILL, log
    assert len(killed) == 5, log
    assert "5 deaths in a row, each within 10 s of its start; giving up" in log
    assert "restarting in 0.25 s" in log and "restarting in 2 s" in log
    assert not mounted(node.mount)
