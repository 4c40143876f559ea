"""The committed Prometheus config (etc/prometheus/): valid for Prometheus's own checker, and
its targets are exactly the ports the cluster runs on (etc/cluster.env, the gateways' settings,
the LiteFS node configs), so no process goes unwatched and no target is a guess."""

import json
import shutil
import subprocess

import pytest
import yaml

from harness.cluster import cluster_env
from harness.procs import ROOT

PROMETHEUS = ROOT / "etc" / "prometheus"


def targets() -> dict[str, list[str]]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }


@pytest.mark.parametrize("what", ["config", "rules"])
def test_promtool_accepts_the_config_and_the_rules(what):
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: ./bin/test installs Debian's prometheus package")
    path = PROMETHEUS / ("prometheus.yml" if what == "config" else "rules.yml")
    checked = subprocess.run(["promtool", "check", what, str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_targets_are_the_ports_every_process_listens_on():
    settings = {
        name: json.loads((ROOT / "etc" / name / "settings" / "service.json").read_text())
        for name in ("enroll", "auth")
    }
    auth_ports = [cluster_env(f"AUTH_{n}_PORT") for n in ("PRIMARY", "SECONDARY_1", "SECONDARY_2")]
    litefs = [cluster_env(f"LITEFS_{n}_PORT") for n in ("PRIMARY", "SECONDARY_1", "SECONDARY_2")]

    assert targets() == {
        "enrollment": [u.removeprefix("http://") for u in settings["enroll"]["backends"]],
        "auth": [f"127.0.0.1:{port}" for port in auth_ports],
        "litefs": [f"127.0.0.1:{port}" for port in litefs],
        "gateway": [f"127.0.0.1:{settings[g]['metrics_port']}" for g in ("enroll", "auth")],
        "notifier": [f"127.0.0.1:{cluster_env('NOTIFIER_METRICS_PORT')}"],
        "prometheus": ["127.0.0.1:9090"],
    }
