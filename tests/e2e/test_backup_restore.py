"""bin/backup takes online copies of both databases while the cluster serves (the enrollment one
through SQLite's backup API, the auth one through `litefs export`), and bin/restore brings them
back into a fresh var/: every SPEC §2 invariant holds there, the enrollment rows are those of the
backup, and every user signs in on the restored LiteFS primary."""

import json
import os
import subprocess

import httpx
import pytest

from harness.auth_cluster import AuthCluster, wait_for
from harness.cluster import Cluster
from harness.invariants import status_counts, violations
from harness.procs import ROOT, free_port
from harness.seed import DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PASSWORD = "restored-and-well"


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_backup_taken_while_serving_restores_into_a_fresh_var(cluster: Cluster, tmp_path):
    gateway = cluster.auth_gateway.url + "/auth_api"
    registered = []
    for n in range(3):
        body = {"username": f"kept{n}", "password": PASSWORD, "first_name": "Kept",
                "last_name": f"User {n}"}  # fmt: skip
        reply = httpx.post(gateway + "/register", json=body, timeout=30)
        assert reply.status_code == 201, reply.text
        registered.append(reply.json())
    enroll = cluster.enroll_gateway.url + "/enroll_api"
    for user in registered:
        token = cluster.login(user["username"], PASSWORD)["access_token"]
        reply = httpx.post(
            f"{enroll}/users/{user['id']}/enrollments",
            json={"section_id": 4},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 201, reply.text
    # (the replicas have the new users too, so no later read races the backup)
    assert wait_for(lambda: all(cluster.login(u["username"], PASSWORD) for u in registered), 5)

    backup = tmp_path / "backup"
    run(
        ["bin/backup", str(backup)],
        {
            "VAR_DIR": str(cluster.var),
            "ENROLL_DATABASE": str(cluster.enrollment.db),
            "LITEFS_PRIMARY_PORT": str(cluster.auth.primary.litefs_port),
        },
    )
    expected_rows = status_counts(cluster.enrollment.db)

    fresh = tmp_path / "fresh"
    ports = {"AUTH_PRIMARY_PORT": str(free_port()), "LITEFS_PRIMARY_PORT": str(free_port())}
    run(["bin/restore", str(backup), "--yes"], {"VAR_DIR": str(fresh), **ports})

    restored_db = fresh / "enroll" / "enroll.db"
    assert not violations(restored_db)
    assert status_counts(restored_db) == expected_rows
    restored = AuthCluster.create(fresh)  # keeps the key bin/restore made
    try:
        restored.start("primary")
        seed = json.loads((ROOT / "share" / "seed" / "people.json").read_text())
        people = [(p["username"], DEMO_PASSWORD) for p in seed]
        people += [(u["username"], PASSWORD) for u in registered]
        for username, password in people:
            reply = httpx.post(
                restored.primary.url + "/login",
                json={"username": username, "password": password},
                timeout=30,
            )
            assert reply.status_code == 200, (username, reply.text)
    finally:
        restored.close()
