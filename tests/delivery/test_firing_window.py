"""The firing window (Campaign.spread_minutes): fans start at an even pace across it, first come first served.

A window's minute lasts DELIVERY_SPREAD_MINUTE_SECONDS; these tests make it a few seconds.
"""

import datetime as dt
import time

import pytest

from delivery import engine
from tests.conftest import make_campaign, make_subscription

pytestmark = pytest.mark.django_db

FANS = [f"fan{i}" for i in range(6)]  # in sign-up order


def sign_up(campaign, sandbox) -> None:
    for user in FANS:
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user)


def save_times(sandbox) -> dict[str, float]:
    return {w["user_id"]: dt.datetime.fromisoformat(w["at"]).timestamp() for w in sandbox.writes()}


def test_deliveries_are_spread_over_the_window_first_come_first_served(sandbox, settings):
    settings.DELIVERY_SPREAD_MINUTE_SECONDS = 6.0  # a one-minute window lasts 6 s: six fans, one a second
    campaign = make_campaign(spread_minutes=1)
    sign_up(campaign, sandbox)

    started = time.time()
    report = engine.deliver_campaign(campaign.pk)

    assert report.counts == {"delivered": len(FANS)}
    saved = save_times(sandbox)
    assert sorted(saved, key=saved.get) == FANS, "fans are served in the order they signed up"
    times = [saved[user] for user in FANS]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) > 0.4, f"one fan a second, not in bursts: {gaps}"
    # Six fans paced one a second over the 6 s window: the last starts at least 4 s after the run did.
    assert times[-1] - started > 4.0


def test_without_a_window_every_fan_goes_at_once(sandbox, settings):
    settings.DELIVERY_SPREAD_MINUTE_SECONDS = 6.0
    campaign = make_campaign(spread_minutes=0)
    sign_up(campaign, sandbox)

    report = engine.deliver_campaign(campaign.pk)

    assert report.counts == {"delivered": len(FANS)}
    times = save_times(sandbox).values()
    assert max(times) - min(times) < 2.0
