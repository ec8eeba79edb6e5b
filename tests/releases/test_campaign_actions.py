"""A campaign must do something for every fan it offers a pre-save: save the release, follow the artist, add it
to a playlist, or several."""

import pytest
from django.urls import reverse

from releases.models import Campaign
from tests.conftest import make_campaign
from tests.releases.test_campaign_admin import form_data

pytestmark = pytest.mark.django_db


def change_url(campaign) -> str:
    return reverse("admin:releases_campaign_change", args=[campaign.pk])


def test_a_campaign_that_neither_saves_nor_follows_is_refused(staff_client, sandbox):
    campaign = make_campaign()

    response = staff_client.post(change_url(campaign), form_data(campaign, save_release=False))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["save_release"] == [
        "A pre-save must save the release, follow the artist or add it to a playlist: tick or fill in at least one."
    ]
    assert "A pre-save must save the release, follow the artist or add it to a playlist" in response.content.decode()
    assert Campaign.objects.get().save_release, "nothing saved"


def test_a_campaign_that_only_follows_cannot_offer_a_service_without_artist_follow(staff_client, sandbox):
    campaign = make_campaign()

    every_service = staff_client.post(change_url(campaign), form_data(campaign, save_release=False, follow_artist="on"))

    assert every_service.status_code == 200, "no services ticked: every enabled service, Apple Music too"
    assert every_service.context["adminform"].form.errors["services"] == [
        "Apple Music can't follow artists, so its fans would get nothing from a pre-save that only follows the "
        "artist. Save the release too, or don't offer Apple Music (tick only the services to offer)."
    ]
    assert not Campaign.objects.get().follow_artist, "nothing saved"

    data = form_data(campaign, save_release=False, follow_artist="on", services=["spotify", "deezer"])
    following_only = staff_client.post(change_url(campaign), data)
    assert following_only.status_code == 302, following_only.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert (campaign.save_release, campaign.follow_artist) == (False, True)
