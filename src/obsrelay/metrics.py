"""Prometheus metrics of one server process (`GET /metrics`, api/ops.py).

Each process has its own registry and is scraped on its own port (docs/adr/0005):
counters count what this process did, so sum them over the processes; the gauges that
describe the shared store (unread jobs, sites online, overdue jobs) are read from it
at scrape time and are the same in every process, so take their max. This module
holds the metrics and reads the scrape-time values; the code that does the work
counts it (services/jobs.py, services/messages.py, api/streaming.py, and the HTTP
middleware in api/middleware.py).
"""

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from obsrelay.api.deps import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A `_created` series per counter doubles the output and no alert reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_CLAIM_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
# A client chooses the method; any other is counted as "other", so that made-up
# methods cannot grow the metrics without bound.
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _CountedElsewhere(Collector):
    """A counter whose value another object keeps (the bus's reconnects, the database's
    refused transactions), read when scraped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name, self._documentation, self._read = name, documentation, read

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


class Metrics:
    """The metrics of one process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=registry)

        def gauge(name: str, documentation: str, *labels: str) -> Gauge:
            return Gauge(name, documentation, labels, registry=registry)

        self.http_requests = counter(
            "obsrelay_http_requests",
            "HTTP requests answered, by route template and status.",
            *("method", "route", "status"),
        )
        self.http_seconds = Histogram(
            "obsrelay_http_request_duration_seconds",
            "Time to answer an HTTP request (a long-poll's includes its wait).",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._http_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.refusals = counter(
            "obsrelay_refusals", "Requests refused, by reason: auth, rate_limit, size...", "reason"
        )
        self.jobs_submitted = counter("obsrelay_jobs_submitted", "Jobs submitted.", "site")
        self.jobs_claimed = counter(
            "obsrelay_jobs_claimed", "Jobs delivered to a site.", "site", "queue"
        )
        self.jobs_finished = counter(
            "obsrelay_jobs_finished",
            "Jobs that reached a final status on a queue.",
            *("site", "queue", "status"),
        )
        self.claim_wait_seconds = Histogram(
            "obsrelay_job_claim_wait_seconds",
            "Time from a job's submission to its delivery to the site.",
            ["queue"],
            buckets=_CLAIM_WAIT_BUCKETS,
            registry=registry,
        )
        self.messages = counter(
            "obsrelay_messages", "User status messages stored.", "site", "level"
        )
        self.frames_sent = counter(
            "obsrelay_stream_frames_sent", "Frames written to stream sockets.", "stream"
        )
        self.slow_clients_closed = counter(
            "obsrelay_stream_slow_clients_closed",
            "Stream sockets closed because the client fell too far behind.",
            "stream",
        )
        self.alerts = counter(
            "obsrelay_alerts",
            "Alerts by outcome: sent, failed (after retries), dropped.",
            "outcome",
        )
        self.stream_sockets = gauge("obsrelay_stream_sockets", "Open stream sockets.")
        self.longpolls_waiting = gauge(
            "obsrelay_longpolls_waiting", "Claims waiting for a job (long-polls)."
        )
        self.bus_up = gauge("obsrelay_bus_up", "1 while the event bus is connected.")
        # Read from the shared store when scraped: the same in every process.
        self.store_up = gauge("obsrelay_database_up", "1 if this scrape could read the store.")
        self.sites_online = gauge("obsrelay_sites_online", "Sites whose software calls.")
        self.site_online = gauge(
            "obsrelay_site_online", "1 while the site's software calls.", "site"
        )
        self.jobs_unread = gauge(
            "obsrelay_jobs_unread", "Jobs waiting for the site (primary queue).", "site"
        )
        self.oldest_unread_seconds = gauge(
            "obsrelay_jobs_oldest_unread_age_seconds",
            "Age of the oldest job waiting for the site (0 when none waits).",
            "site",
        )
        self.jobs_overdue = gauge(
            "obsrelay_jobs_overdue", "Running jobs past the site's estimate.", "site"
        )
        self.jobs_abandoned = gauge(
            "obsrelay_jobs_abandoned", "Received jobs the site never reported on.", "site"
        )

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Counts and times one answered request; `route` is a template or "unmatched"."""
        if method not in _HTTP_METHODS:
            method = "other"
        key = (method, route, status)
        series = self._http_series.get(key)
        if series is None:
            # labels() validates and locks on every call: a third of the cost per request.
            series = self._http_series[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_seconds.labels(method, route),
            )
        requests, duration = series
        requests.inc()
        duration.observe(seconds)

    def count_elsewhere(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self.registry.register(_CountedElsewhere(name, documentation, read))

    async def refresh(self, services: "Services") -> None:
        """Sets the gauges read at scrape time; a store that does not answer leaves the
        per-site ones empty and `obsrelay_database_up` 0."""
        from obsrelay.store.database import DatabaseUnavailable

        self.stream_sockets.set(sum(services.sockets_per_client.values()))
        self.longpolls_waiting.set(services.waiters.waiting)
        self.bus_up.set(1 if services.bus.healthy else 0)
        per_site = (
            self.site_online,
            self.jobs_unread,
            self.oldest_unread_seconds,
            self.jobs_overdue,
            self.jobs_abandoned,
        )
        for gauge in per_site:
            gauge.clear()
        try:
            views = await services.presence.overview()
        except DatabaseUnavailable:
            self.store_up.set(0)
            return
        self.store_up.set(1)
        now = time.time()
        self.sites_online.set(sum(1 for view in views if view.online))
        for view in views:
            self.site_online.labels(view.site).set(1 if view.online else 0)
            self.jobs_unread.labels(view.site).set(view.jobs.unread)
            oldest = view.jobs.oldest_unread_ms
            age = 0.0 if oldest is None else max(0.0, now - oldest / 1000)
            self.oldest_unread_seconds.labels(view.site).set(age)
            self.jobs_overdue.labels(view.site).set(len(view.jobs.overdue))
            self.jobs_abandoned.labels(view.site).set(len(view.jobs.abandoned))

    def render(self) -> bytes:
        return generate_latest(self.registry)
