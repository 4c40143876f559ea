"""Fixtures of the end-to-end tests: real LiteFS nodes, auth instances, enrollment instances and
KrakenD gateways (harness/), on free loopback ports in temporary directories, torn down at the
end of each module."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.auth_cluster import LITEFS, ROOMY_LIMITS_ENV, AuthCluster, litefs_mounts
from harness.cluster import Cluster
from harness.gateway import KRAKEND


def require_fuse() -> None:
    if os.geteuid() != 0 or not Path("/dev/fuse").is_char_device():
        why = "LiteFS needs root and /dev/fuse to mount its FUSE file system"
        if os.environ.get("CI") == "true":  # CI must not pass by leaving these tests out
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    if not LITEFS.exists():
        pytest.fail(f"{LITEFS} is missing: run ./bin/test or ./bin/start, which build LiteFS")


@pytest.fixture(scope="module")
def auth_cluster_env() -> dict[str, str]:
    """Settings for every node of a module's cluster; a module that tests the abuse limits
    overrides this fixture with limits of its own."""
    return dict(ROOMY_LIMITS_ENV)


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory, auth_cluster_env: dict[str, str]) -> Iterator[AuthCluster]:
    """The three nodes, started once per test module and torn down (unmounted) at its end."""
    require_fuse()
    cluster = AuthCluster.create(tmp_path_factory.mktemp("litefs-cluster"), auth_cluster_env)
    try:
        seconds = cluster.start()
        print(f"auth cluster: 3 LiteFS nodes with auth up in {seconds:.2f} s (first start)")
        yield cluster
    finally:
        cluster.close()
    leftovers = litefs_mounts(cluster.dir)
    assert not leftovers, f"still mounted after teardown: {leftovers}"


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    """Settings for every auth node of a module's whole cluster; the abuse limits are out of
    reach unless a module overrides this fixture (tests/e2e/test_auth_gateway.py does)."""
    return dict(ROOMY_LIMITS_ENV)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_env: dict[str, str]) -> Iterator[Cluster]:
    """The Procfile's whole cluster (3 enrollment instances, 3 LiteFS auth nodes, both KrakenD
    gateways) on free loopback ports in a temporary var/, once per test module."""
    require_fuse()
    if not KRAKEND.exists():
        pytest.fail(f"{KRAKEND} is missing: run ./bin/test or ./bin/start, which build KrakenD")
    whole = Cluster(tmp_path_factory.mktemp("cluster"), cluster_env)
    try:
        whole.start()
        yield whole
    finally:
        whole.close()
    leftovers = litefs_mounts(whole.var)
    assert not leftovers, f"still mounted after teardown: {leftovers}"


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.fuzz.helpers import TALLY

    if TALLY["gateway fuzz requests"]:
        terminalreporter.write_line(
            f"gateway fuzz: {TALLY['gateway fuzz enrollment cases']} enrollment cases (each as"
            f" 3 roles and without a token), {TALLY['gateway fuzz auth cases']} auth cases,"
            f" {TALLY['gateway fuzz requests']} requests through KrakenD;"
            f" {TALLY['gateway fuzz control characters']} control characters in a path got"
            " the gateway's own 400 bad_path"
        )
