"""`manage.py bench_delivery` end to end with tiny numbers: a correctness check, never a timing one."""

import io

import pytest
from django.core.management import call_command

from fans.models import Fan, Subscription
from releases.models import Campaign


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workers", [2, 0], ids=["real-qcluster-workers", "in-process"])
def test_benchmark_delivers_every_fan_once_and_cleans_up(workers):
    out = io.StringIO()

    call_command("bench_delivery", fans=30, baseline_fans=5, latency_ms=0, workers=workers, stdout=out)

    output = out.getvalue()
    assert "OK   subscriptions: delivered 30, failed 0, revoked 0; pending 0, missing 0" in output
    assert "OK   duplicates: 0 fans saved more than once" in output
    assert "FAIL" not in output
    for phase in ("baseline", "ceiling", "engine"):
        assert f"  {phase:<10}" in output
    assert "checks passed" in output.splitlines()[-1]
    assert not Campaign.objects.exists() and not Subscription.objects.exists() and not Fan.objects.exists()
