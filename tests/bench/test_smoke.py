"""Every benchmark in bench/ runs against the current code (issue 15): each in its smoke
mode, a run of a few seconds whose figures are not judged. A benchmark that breaks (a
server that refuses its load, a changed API, a crash) fails here."""

from tests.bench.smoke import run_smoke
from tests.servers import postgres_admin_url


def test_the_http_benchmark_runs():
    output = run_smoke("bench.jobs")
    assert "POST /jobs/newjob" in output and "POST /echo (bare FastAPI)" in output


def test_the_datastream_benchmark_runs_with_its_subscribers_let_in():
    output = run_smoke("bench.stream")
    assert "max_sockets_per_client=" in output  # it says how it set the server up
    assert "highest rate with nothing lost: 50 msg/s" in output
    assert "ceiling, held like obsrelay" in output  # the bare broadcast server ran too


def test_the_idle_memory_benchmark_runs():
    output = run_smoke("bench.idle")
    assert "long-polls" in output and "KiB per idle datastream socket" in output


def test_the_latency_benchmark_runs():
    output = run_smoke("bench.latency")
    assert "long-poll (wait=20)      jobs    5 (lost 0)" in output


def test_the_log_handler_benchmark_runs():
    output = run_smoke("bench.loghandler")
    assert "obsrelay, server hung" in output


def test_the_queue_peer_benchmark_runs():
    output = run_smoke("bench.peers", "--postgres", postgres_admin_url())
    assert "claim+complete / dequeue+done" in output
    assert "reference: PgQueuer, one consumer" in output  # beside the same concurrency
    assert "each round" in output
