"""`manage.py bench_campaign_page` end to end with tiny numbers: it runs gunicorn, loads both URLs without an
error, prints the figures and cleans up. A check that it works, never a timing one."""

import io
import re

import pytest
from django.core.management import call_command

from fans.models import FunnelEvent
from releases.models import Campaign


@pytest.mark.django_db(transaction=True)
def test_benchmark_serves_both_urls_under_gunicorn_and_cleans_up():
    out = io.StringIO()

    call_command("bench_campaign_page", seconds=1, rounds=2, concurrency=2, workers=1, threads=2, stdout=out)

    output = out.getvalue()
    for name in ("trivial", "campaign", "returning"):
        line = next(line for line in output.splitlines() if line.strip().startswith(name))
        assert re.search(r"\d+ req/s\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms\s+[1-9]\d* requests, 0 errors", line), line
    assert re.search(r"ratio campaign/trivial: \d\.\d\d \(new visitors; (meets|below) the target of 0.75;", output)
    assert re.search(r"ratio returning/trivial: \d\.\d\d \(returning visitors; (meets|below) the", output)
    # judged by the median of the rounds' own ratios, each round printed
    assert re.search(r"median of the rounds: \d\.\d\d, \d\.\d\d; all rounds pooled: \d\.\d\d\)", output)
    # and the server's CPU a request (gunicorn's processes, from /proc), with its ratio
    assert re.search(r"trivial .* 0 errors\s+server CPU\s+[1-9]\d* µs a request", output)
    assert len(re.findall(r"by the server's CPU a request: \d+\.\d\d", output)) == 2
    assert not Campaign.objects.exists() and not FunnelEvent.objects.exists()
