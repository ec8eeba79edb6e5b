"""Migration releases 0017: the `funnel:<kind>:service:` tallies of events naming no service go, and stop."""

import pytest

from fans.models import FunnelEvent
from releases.models import CampaignTally
from tests.conftest import make_campaign
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)


def service_keys(campaign) -> dict[str, int]:
    tallies = CampaignTally.objects.filter(campaign_id=campaign.pk, key__contains=":service:")
    return dict(tallies.values_list("key", "count"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_page_views_service_tally_goes_and_comes_back_when_migrated_back():
    campaign = make_campaign()
    migrate(("releases", "0016_tally_services"))
    FunnelEvent.objects.bulk_create(FunnelEvent(campaign=campaign, kind="view") for _ in range(3))
    FunnelEvent.objects.create(campaign=campaign, kind="click", service="deezer")
    assert service_keys(campaign) == {"funnel:view:service:": 3, "funnel:click:service:deezer": 1}

    migrate(("releases", "0017_tally_services_only_with_a_service"))
    assert service_keys(campaign) == {"funnel:click:service:deezer": 1}
    FunnelEvent.objects.create(campaign=campaign, kind="view")
    assert service_keys(campaign) == {"funnel:click:service:deezer": 1}

    migrate(("releases", "0016_tally_services"))
    assert service_keys(campaign) == {"funnel:view:service:": 4, "funnel:click:service:deezer": 1}
