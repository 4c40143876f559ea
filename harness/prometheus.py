"""Prometheus for a test run or a benchmark: the committed config (etc/prometheus/), its rules
included, with this run's ports in place of each job's targets, scraping every second, on a
free loopback port, data in the run's directory; and a client of its HTTP API."""

import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from harness import http
from harness.procs import ROOT, free_port, stop, wait_http

CONFIG = ROOT / "etc" / "prometheus" / "prometheus.yml"
SCRAPE_SECONDS = 1


# A job's targets: host:port strings, or Prometheus static_configs (targets with labels).
Targets = list[str] | list[dict[str, Any]]


class Prometheus:
    def __init__(
        self,
        var: Path,
        targets: dict[str, Targets],
        *,
        port: int | None = None,
        every_job: bool = True,
    ) -> None:
        """`targets`: for each job of the committed config, this run's host:port targets, or
        its static_configs. With `every_job` False a job not in `targets` is left out (the
        three test hosts run no notifier); `port` is a free one unless given."""
        self.dir = var / "prometheus"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = var / "prometheus.log"
        config = yaml.safe_load(CONFIG.read_text())
        config["global"] |= {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        }
        config["rule_files"] = [str(CONFIG.parent / name) for name in config["rule_files"]]
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        unknown = set(targets) - set(jobs)
        assert not unknown, f"no such job in {CONFIG.name}: {sorted(unknown)}"
        if every_job:
            assert set(targets) | {"prometheus"} == set(jobs), f"jobs: {sorted(jobs)}"
        targets = {**targets, "prometheus": [f"127.0.0.1:{self.port}"]}
        config["scrape_configs"] = [
            job | {"static_configs": _static_configs(targets[name])}
            for name, job in jobs.items()
            if name in targets
        ]
        self.config = var / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen | None = None

    def start(self, *, detached: bool = False) -> None:
        """Start it and wait until it is ready. `detached`: in a session of its own, to outlive
        the caller (bin/multihost up), which then ends it by its pid (`self.proc.pid`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            "prometheus", f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}", f"--storage.tsdb.path={self.dir}",
            "--log.format=json",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detached,
            )
        wait_http(self.url + "/-/ready", self.proc, status=200, log=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None

    def query(self, promql: str) -> list[dict]:
        """The instant vector of `promql` now: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        reply = http.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": promql, "start": start, "end": end, "step": step}
        reply = http.get(self.url + "/api/v1/query_range", params=params, timeout=30)
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def targets(self) -> list[dict]:
        reply = http.get(self.url + "/api/v1/targets", timeout=10)
        reply.raise_for_status()
        return reply.json()["data"]["activeTargets"]

    def scraped_after(self, moment: float, timeout: float = 20.0) -> None:
        """Wait until every target has been scraped since `moment` (a time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.targets()
            if found and all(_scraped_at(t) > moment for t in found):
                return
            time.sleep(0.2)
        raise TimeoutError(f"not every target was scraped within {timeout} s: {self.targets()}")


def _static_configs(targets: Targets) -> list[dict[str, Any]]:
    if all(isinstance(t, str) for t in targets):
        return [{"targets": list(targets)}]
    return [t for t in targets if isinstance(t, dict)]


def _scraped_at(target: dict) -> float:
    """When Prometheus last scraped `target` (0 if never). It writes RFC 3339 with nanoseconds,
    in UTC here; microseconds are enough."""
    found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,6})?", target.get("lastScrape", ""))
    if found is None or found[1].startswith("0001"):
        return 0.0
    return datetime.fromisoformat(found[1] + (found[2] or "") + "+00:00").timestamp()
