"""Fixtures of the end-to-end tests: real LiteFS nodes, auth instances, enrollment instances and
KrakenD gateways (harness/), on free loopback ports in temporary directories, torn down at the
end of each module (whole clusters: at the end of the session, shared by the modules with the
same settings and reset to the demo seed for each)."""

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


class Clusters:
    """Whole clusters shared by the test modules of a session, one per set of settings: the
    modules that ask for the same `cluster_env` get the same running cluster, reset to the demo
    seed before each of them (Cluster.reset), as if it were their own. A module that left a
    process stopped gets a new cluster. Starting one costs about 5 s on 2 cores; 8 modules use
    the default settings."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.running: dict[tuple[tuple[str, str], ...], Cluster] = {}

    def get(self, env: dict[str, str]) -> Cluster:
        key = tuple(sorted(env.items()))
        shared = self.running.get(key)
        if shared is not None and shared.whole:
            shared.reset()
            return shared
        if shared is not None:
            self._close(self.running.pop(key))
        fresh = Cluster(self.tmp_path_factory.mktemp("cluster"), env)
        try:
            fresh.start()
        except BaseException:
            self._close(fresh)
            raise
        self.running[key] = fresh
        return fresh

    def close(self) -> None:
        while self.running:
            self._close(self.running.popitem()[1])

    @staticmethod
    def _close(cluster: Cluster) -> None:
        cluster.close()
        leftovers = litefs_mounts(cluster.var)
        assert not leftovers, f"still mounted after teardown: {leftovers}"


@pytest.fixture(scope="session")
def clusters(tmp_path_factory) -> Iterator[Clusters]:
    pool = Clusters(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def cluster(clusters: Clusters, cluster_env: dict[str, str]) -> Cluster:
    """The Procfile's whole cluster (3 enrollment instances, 3 LiteFS auth nodes, both KrakenD
    gateways, the web app) on free loopback ports in a temporary var/, holding the demo seed
    when the module starts; shared with the other modules of the same `cluster_env`."""
    require_fuse()
    if not KRAKEND.exists():
        pytest.fail(f"{KRAKEND} is missing: run ./bin/test or ./bin/start, which build KrakenD")
    return clusters.get(cluster_env)
