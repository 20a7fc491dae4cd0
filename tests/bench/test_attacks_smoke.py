"""The attacks of bench/attacks.py all still run against this checkout (in their smoke
mode: without the older build, with their waits shortened and their servers forked)."""

from tests.bench.smoke import run_smoke
from tests.servers import postgres_admin_url


def test_every_attack_runs_against_this_checkout():
    output = run_smoke("bench.attacks", "--postgres", postgres_admin_url())
    assert output.count("after (this checkout)") == 15, output[-3000:]  # 14, and the outage
    assert "the attack failed" not in output
