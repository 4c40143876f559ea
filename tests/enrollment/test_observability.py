"""What operators see of the enrollment service: /metrics with the business counters, counted
once the change has committed; a request id on every answer, in every error body and in the
log line of a refused request (JSON)."""

import json
import logging

import pytest
from prometheus_client import REGISTRY

from app.common.observe import Formatter
from tests.enrollment.helpers import REGISTRAR, person
from tests.enrollment.test_rules import enroll, fill, new_section


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts() -> dict[str, float]:
    return {
        "enrolled": count("enroll_outcomes_total", result="enrolled"),
        "waitlisted": count("enroll_outcomes_total", result="waitlisted"),
        "full": count("enroll_outcomes_total", result="waitlist_full"),
        "already": count("enroll_outcomes_total", result="already_enrolled"),
        "dropped": count("enrollment_drops_total", reason="dropped"),
        "promoted": count("waitlist_promotions_total"),
        "frozen": count("waitlist_promotion_skips_total", reason="frozen"),
    }


def test_enroll_outcomes_drops_promotions_and_frozen_skips_are_counted(api):
    before = counts()
    section = new_section(api, capacity=1, waitlist_capacity=2)
    fill(api, section, [9, 10, 11])  # 9 enrolled, 10 and 11 waiting
    assert enroll(api, 12, section).status_code == 409  # waitlist full
    assert enroll(api, 9, section).status_code == 409  # already enrolled
    api.as_(person(9)).delete(f"/users/9/enrollments/{section}")  # 10 promoted
    api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": True})
    api.as_(person(10)).delete(f"/users/10/enrollments/{section}")  # frozen: 11 keeps waiting

    after = counts()
    assert {k: after[k] - before[k] for k in before} == {
        "enrolled": 1, "waitlisted": 2, "full": 1, "already": 1,
        "dropped": 2, "promoted": 1, "frozen": 1,
    }  # fmt: skip


def test_a_change_that_rolls_back_is_not_counted(api, monkeypatch):
    from app.enrollment.enrollments import queries

    section = new_section(api, capacity=5)
    before = count("enroll_outcomes_total", result="enrolled")

    def fail(*args, **kwargs):
        raise RuntimeError("the audit row could not be written")

    monkeypatch.setattr(queries, "get_enrollment", fail)  # the last step of the transaction
    with pytest.raises(RuntimeError):  # the TestClient re-raises what the app answered 500 to
        enroll(api, 9, section)

    assert api.as_(REGISTRAR).get(f"/sections/{section}").json()["enrolled"] == 0
    assert count("enroll_outcomes_total", result="enrolled") == before


def test_metrics_are_served_in_prometheus_text_format(api):
    api.as_(person(9)).get("/sections/1")
    reply = api.client.get("/metrics")

    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert 'http_request_duration_seconds_count{method="GET",route="/sections/{section_id}"' in (
        reply.text
    )
    assert "# TYPE enroll_outcomes_total counter" in reply.text
    assert "# TYPE writer_lock_wait_seconds histogram" in reply.text


def test_a_refusal_carries_the_request_id_given_and_logs_it_as_json(api, caplog):
    headers = {**api.headers(person(9)), "X-Request-Id": "gateway-id-123"}
    with caplog.at_level(logging.INFO, logger="app.requests"):
        reply = api.client.get("/users/10/enrollments", headers=headers)
    record = next(r for r in caplog.records if r.name == "app.requests")
    line = json.loads(Formatter().format(record))

    assert reply.status_code == 403
    assert reply.headers["x-request-id"] == "gateway-id-123"
    assert reply.json()["request_id"] == "gateway-id-123"
    assert line["request_id"] == "gateway-id-123" and line["status"] == 403
    assert line["code"] == "forbidden" and line["route"] == "/users/{user_id}/enrollments"


def test_without_a_usable_request_id_the_service_makes_one(api):
    headers = {**api.headers(person(9)), "X-Request-Id": "not ok\x7f" * 20}
    first = api.client.get("/sections/999", headers=headers)
    second = api.client.get("/sections/999", headers=api.headers(person(9)))

    assert first.json()["request_id"] == first.headers["x-request-id"]
    assert len(first.headers["x-request-id"]) == 32  # a fresh uuid4, not the bad one
    assert second.headers["x-request-id"] not in ("", first.headers["x-request-id"])
