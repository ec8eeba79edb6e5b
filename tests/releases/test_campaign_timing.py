"""What fans of a market see of a campaign at a moment: Campaign.seen_from, read with one look at the clock."""

from __future__ import annotations

import datetime as dt

import time_machine

from releases.models import Campaign
from tests.conftest import make_campaign


def test_a_moment_before_the_release_fans_may_pre_save_and_at_it_the_release_is_out(db):
    campaign = make_campaign()
    release_at = campaign.release.release_at

    with time_machine.travel(release_at - dt.timedelta(seconds=1), tick=False):
        before = campaign.seen_from("GB")
    with time_machine.travel(release_at, tick=False):
        at = campaign.seen_from("GB")

    assert (before.release_at, before.is_out, before.accepting) == (release_at, False, True)
    assert (at.release_at, at.is_out, at.accepting) == (release_at, True, False)


def test_a_delivering_per_market_campaign_still_takes_pre_saves_where_it_is_not_out(db):
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    auckland, new_york = campaign.firing_time("NZ"), campaign.firing_time("US")

    with time_machine.travel(auckland + dt.timedelta(minutes=1), tick=False):
        seen_nz, seen_us = campaign.seen_from("NZ"), campaign.seen_from("US")

    assert auckland < new_york
    assert (seen_nz.is_out, seen_nz.accepting) == (True, False)
    assert (seen_us.release_at, seen_us.is_out, seen_us.accepting) == (new_york, False, True)
