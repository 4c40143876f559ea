"""Plain helpers of the enrollment tests: the seed people they act as, the gateway's headers for
them, and `Api`, a TestClient that can say `api.as_(AVA).get(...)`."""

import json
import sqlite3
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.common.identity import gateway_headers
from app.enrollment.init_db import PEOPLE as PEOPLE_FILE
from harness import http
from harness.enroll_cluster import write_secret

PEOPLE = {p["id"]: p for p in json.loads(PEOPLE_FILE.read_text())}


def person(user_id: int) -> tuple:
    """A seed person as (id, username, *roles), the shape `Api.as_` takes."""
    p = PEOPLE[user_id]
    return (p["id"], p["username"], *p["roles"])


# Seed people (share/seed/people.json) the tests act as.
REGISTRAR = (1, "rhenderson", "registrar")
KAVERY = (3, "kavery", "instructor")  # teaches sections 1 and 2 (CPSC 449)
LCHEN = (4, "lchen", "instructor")  # teaches sections 3 and 4 (CPSC 131)
AVA = (9, "ajohnson", "student")  # enrolled in sections 1 and 2
LIAM = (10, "lsmith", "student")


def make_secret_file(directory: Path) -> Path:
    return write_secret(directory / "gateway.secret")


identity_headers = gateway_headers  # the headers the gateway sets for a caller


class Api:
    """A TestClient plus the secret, so tests can say `api.as_(AVA).get(...)`."""

    def __init__(self, client: TestClient, secret: str, db_path: Path) -> None:
        self.client = client
        self.secret = secret
        self.db_path = db_path

    def headers(self, who: tuple) -> dict[str, str]:
        user_id, username, *roles = who
        return identity_headers(self.secret, user_id, username, *roles)

    def as_(self, who: tuple) -> "_As":
        return _As(self.client, self.headers(who))

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        return conn

    def dump(self) -> list[tuple]:
        """Every row of every table: to prove a refused request changed nothing."""
        with self.db() as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return [
                (t, *tuple(r)) for t in sorted(tables) for r in conn.execute(f"SELECT * FROM {t}")
            ]


class _As:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def request(self, method: str, url: str, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def __getattr__(self, method: str):
        return lambda url, **kwargs: self.request(method.upper(), url, **kwargs)


def assert_rush_outcome(replies: list, waitlist: list[dict], *, seats: int, places: int) -> Counter:
    """What SPEC §2 allows when distinct students all enroll at once in one empty section with
    `seats` seats and `places` waitlist places: exactly the seats taken, the waitlist full at
    positions 1..n in the order the service told each one, every other answer 409 waitlist_full;
    no 5xx. Returns the outcome counts. (That every instance served: `served`.)"""
    failed = [
        (r.status, r.text[:300] if hasattr(r, "text") else r.body[:300].decode(errors="replace"))
        for r in replies
        if r.status >= 500
    ]
    assert not failed, f"{len(failed)} requests failed with a 5xx, the first: {failed[0]}"
    outcomes = Counter(r.json()["status"] if r.status == 201 else r.status for r in replies)
    assert outcomes == {"enrolled": seats, "waitlisted": places, 409: len(replies) - seats - places}
    assert all(r.json()["code"] == "waitlist_full" for r in replies if r.status == 409)
    assert [e["position"] for e in waitlist] == list(range(1, places + 1))
    told = {
        r.json()["user_id"]: r.json()["position"]
        for r in replies
        if r.status == 201 and r.json()["status"] == "waitlisted"
    }
    assert {e["user_id"]: e["position"] for e in waitlist} == told
    return outcomes


def served(urls: list[str], method: str, route: str) -> list[int]:
    """How many requests for `route` (a path template) each instance has answered, from its own
    /metrics: answers through the gateway do not name the instance."""
    counts = []
    for url in urls:
        text = http.get(url + "/metrics").text
        counts.append(
            sum(
                int(sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "http_request_duration_seconds_count"
                and sample.labels.get("route") == route
                and sample.labels.get("method") == method
            )
        )
    return counts
