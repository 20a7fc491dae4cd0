"""/metrics against the real app: what the work counts, what is read at scrape time, who
may read them, and the shipped alert rules, whose expressions must name metrics that
exist."""

import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import newjob_body, raw
from tests.inprocess import InProcessApp

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_work_is_counted(http: httpx.Client, site: str):
    before = scrape(http)
    submitted = [http.post("/jobs/newjob", content=raw(newjob_body(site))).json() for _ in range(2)]
    claimed = http.post("/jobs/getnewjobs", content=raw({"site": site})).json()
    assert len(claimed) == 2
    report = {"site": site, "ulid": submitted[0]["ulid"], "newStatus": "COMPLETE"}
    assert http.post("/jobs/updatejobstatus", json=report).is_success
    assert http.post("/jobs/updatejobstatus", json=report).is_success  # repeated: no change
    for level in ("info", "error", "error"):
        body = {"site": site, "log_message": "m", "log_level": level}
        assert http.post("/logs/newlog", json=body).is_success
    after = scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("obsrelay_jobs_submitted_total", site=site) == 2
    assert grew("obsrelay_jobs_claimed_total", site=site, queue="primary") == 2
    finished = {"site": site, "queue": "primary", "status": "COMPLETE"}
    assert grew("obsrelay_jobs_finished_total", **finished) == 1
    assert grew("obsrelay_job_claim_wait_seconds_count", queue="primary") == 2
    assert grew("obsrelay_messages_total", site=site, level="error") == 2
    newjob = {"method": "POST", "route": "/jobs/newjob", "status": "200"}
    assert grew("obsrelay_http_requests_total", **newjob) == 2
    timed = {"method": "POST", "route": "/jobs/newjob"}
    assert grew("obsrelay_http_request_duration_seconds_count", **timed) == 2
    # Read from the store when scraped.
    assert value(after, "obsrelay_site_online", site=site) == 1
    assert value(after, "obsrelay_jobs_unread", site=site) == 0
    assert value(after, "obsrelay_database_up") == 1
    assert value(after, "obsrelay_bus_up") == 1


def test_routes_are_templates_and_refusals_have_reasons(http: httpx.Client, site: str):
    before = scrape(http)
    assert http.get(f"/api/v1/sites/{site}").is_success
    assert http.get(f"/made-up/{site}").status_code == 404
    assert http.request(f"BREW-{site}", f"/made-up/{site}").status_code == 404
    assert http.post("/jobs/newjob", content=b'{"site": ').status_code == 400
    huge = b'{"site": "' + b"x" * 2_000_000 + b'"}'
    assert http.post("/logs/newlog", content=huge).status_code == 413
    after = scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    one_site = {"method": "GET", "route": "/api/v1/sites/{site}", "status": "200"}
    assert grew("obsrelay_http_requests_total", **one_site) == 1
    made_up = {"method": "GET", "route": "unmatched", "status": "404"}
    assert grew("obsrelay_http_requests_total", **made_up) == 1
    made_up_method = {"method": "other", "route": "unmatched", "status": "404"}
    assert grew("obsrelay_http_requests_total", **made_up_method) == 1
    assert not any(
        site in str(labels) for name, labels in after if name.startswith("obsrelay_http")
    )
    assert grew("obsrelay_refusals_total", reason="input") == 1
    assert grew("obsrelay_refusals_total", reason="size") == 1


def test_only_the_named_clients_may_read_them(database_url: str, tmp_path: Path):
    closed = InProcessApp(database_url, tmp_path, metrics_clients="10.0.0.0/8")
    try:
        with closed.client() as http:
            refused = http.get("/metrics")
            assert refused.status_code == 403
            assert "OBSRELAY_METRICS_CLIENTS" in refused.json()["detail"]
    finally:
        closed.close()


def test_the_alert_rules_name_metrics_that_exist(http: httpx.Client, site: str):
    # Make every labelled family appear at least once.
    http.post("/jobs/newjob", content=raw(newjob_body(site)))
    http.post("/jobs/getnewjobs", content=raw({"site": site}))
    answer = http.get("/metrics").text
    families = {family.name for family in text_string_to_metric_families(answer)}
    exposed = families | {f"{name}_total" for name in families}
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    assert {"ObsrelaySiteOffline", "ObsrelayJobsOverdue", "ObsrelayQueueGrowing"} <= {
        rule["alert"] for rule in rules
    }
    assert any("database_errors" in rule["expr"] for rule in rules)
    for rule in rules:
        named = set(re.findall(r"\bobsrelay_[a-z_]+", rule["expr"]))
        assert named, rule["alert"]
        assert named <= exposed, f"{rule['alert']} names {named - exposed}"


class _RecordingTracerProvider(trace.TracerProvider):
    """A tracer provider that is configured, as an SDK's would be, and counts its tracers."""

    def __init__(self) -> None:
        self.asked = 0

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked += 1
        return trace.NoOpTracer()


def test_fastapis_own_telemetry_stays_off_with_a_tracer_provider_configured(
    sqlite_url, tmp_path, monkeypatch
):
    # obsrelay reports through /metrics and its logs (ADR 0011): a provider that another
    # library configures in the process must not make FastAPI trace every request.
    provider = _RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app = InProcessApp(sqlite_url, tmp_path)
    try:
        with app.client() as http:
            assert http.get("/healthz").status_code == 200
            assert http.post("/logs/newlog", content=b"{").status_code == 400
    finally:
        app.close()
    assert provider.asked == 0
