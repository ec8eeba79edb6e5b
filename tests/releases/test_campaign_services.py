"""The campaign admin's services: checkboxes of the enabled services, Apple Music's rules and warnings."""

import html

import pytest
from django.urls import reverse

from delivery.services import SERVICES
from delivery.services.apple_music import NO_FOLLOW_WARNING, ONE_TRACK_WARNING
from releases.models import Artist, Campaign
from tests.conftest import make_campaign
from tests.releases.test_campaign_admin import form_data

pytestmark = pytest.mark.django_db


def change_url(campaign) -> str:
    return reverse("admin:releases_campaign_change", args=[campaign.pk])


def test_services_are_checkboxes_of_the_enabled_services_with_apples_rules(staff_client, sandbox):
    response = staff_client.get(reverse("admin:releases_campaign_add"))
    field = response.context["adminform"].form.fields["services"]
    assert field.choices == [("spotify", "Spotify"), ("apple_music", "Apple Music"), ("deezer", "Deezer")]
    assert "pre-order" in field.help_text and "One-track singles" in field.help_text
    assert 'type="checkbox" name="services" value="deezer"' in response.content.decode()


def test_a_switched_off_service_is_not_offered(staff_client, sandbox, settings):
    settings.DEEZER_ENABLED = False
    response = staff_client.get(reverse("admin:releases_campaign_add"))
    assert [key for key, _ in response.context["adminform"].form.fields["services"].choices] == [
        "spotify",
        "apple_music",
    ]


def test_ticked_services_are_saved_and_offered_on_the_page(staff_client, sandbox):
    campaign = make_campaign()
    data = form_data(campaign, services=["apple_music", "deezer"])
    response = staff_client.post(change_url(campaign), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert campaign.services == ["apple_music", "deezer"]
    assert [cls.key for cls in campaign.offered_services()] == ["apple_music", "deezer"]

    unknown = staff_client.post(change_url(campaign), form_data(campaign, services=["tidal"]))
    assert unknown.status_code == 200 and "services" in unknown.context["adminform"].form.errors


def test_apple_music_warnings_for_a_one_track_single_with_follow(staff_client, sandbox):
    campaign = make_campaign(follow_artist=True)
    release = campaign.release
    release.kind, release.isrc = "track", "GBSBX2600001"
    release.save()
    html = staff_client.get(change_url(campaign)).content.decode()
    assert ONE_TRACK_WARNING in html.replace("&#x27;", "'") and NO_FOLLOW_WARNING in html

    Campaign.objects.filter(pk=campaign.pk).update(services=["spotify"])
    html = staff_client.get(change_url(campaign)).content.decode()
    assert NO_FOLLOW_WARNING not in html, "only the offered services warn"


def test_every_service_warns_when_the_release_has_nothing_it_finds_it_by(staff_client, sandbox, settings):
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 72
    campaign = make_campaign()
    release = campaign.release
    release.spotify_uri, release.upc = "", ""
    release.save()

    page = html.unescape(staff_client.get(change_url(campaign)).content.decode())

    for label, identifiers in [("Spotify", "Spotify URI, UPC or ISRC"), ("Apple Music", "UPC"), ("Deezer", "UPC")]:
        assert (
            f"{label} finds the release by its {identifiers}, and this release has none: its {label} fans will wait "
            "on release day, and fail 72 hours later, unless one is added."
        ) in page

    release.upc = "5012345678900"
    release.save()
    assert "finds the release by" not in staff_client.get(change_url(campaign)).content.decode()


def test_change_page_shows_each_services_clicks_authorizations_and_deliveries(staff_client, sandbox, client):
    from delivery import engine
    from releases.analytics import by_service
    from tests.conftest import make_subscription
    from tests.delivery.test_apple_music import presave_with_apple_music

    campaign = make_campaign()
    presave_with_apple_music(client, campaign, sandbox.authorize_apple_music("chloe"))
    make_subscription(campaign, sandbox, "alice")
    engine.deliver_campaign(campaign.pk)

    rows = {row.label: row for row in by_service(campaign)}
    assert list(rows) == ["Spotify", "Apple Music"], "registry order, only services with fans or clicks"
    apple = rows["Apple Music"]
    assert (apple.clicks, apple.authorizations, apple.statuses["delivered"]) == (1, 1, 1)
    assert rows["Spotify"].statuses["delivered"] == 1 and rows["Spotify"].clicks == 0
    html = staff_client.get(change_url(campaign)).content.decode()
    assert "By service" in html and '<th scope="row">Apple Music</th>' in html


def test_follow_the_artist_asks_only_what_the_offered_services_need(staff_client, sandbox):
    campaign = make_campaign()
    Artist.objects.filter(pk=campaign.release.artist_id).update(spotify_uri="")

    with_spotify = staff_client.post(change_url(campaign), form_data(campaign, follow_artist="on"))
    assert with_spotify.status_code == 200, "no services ticked: every enabled service is offered, Spotify too"
    errors = with_spotify.context["adminform"].form.errors["follow_artist"]
    assert errors == [
        "Following the artist on Spotify needs the artist's Spotify URI. Add it to the artist, or don't offer "
        "Spotify in this campaign."
    ]
    assert "Following the artist on Spotify needs the artist&#x27;s Spotify URI" in with_spotify.content.decode()

    without = staff_client.post(
        change_url(campaign), form_data(campaign, follow_artist="on", services=["apple_music", "deezer"])
    )
    assert without.status_code == 302, without.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert campaign.follow_artist, "Deezer follows by the artist it finds with the release"
    spotify_calls = SERVICES["spotify"]().delivery_calls("access-token", campaign)
    assert [call.name for call in spotify_calls] == ["save"], "Spotify, if offered again later, saves only"


def test_each_service_says_what_it_needs_to_follow_the_artist(db):
    artist = Artist(name="Nova Lark", spotify_uri="")
    assert {key: cls().follow_needs(artist) for key, cls in SERVICES.items()} == {
        "spotify": "the artist's Spotify URI",
        "apple_music": "",
        "deezer": "",
    }
    artist.spotify_uri = "spotify:artist:0TnOYISbd1XYRBk9myaseg"
    assert SERVICES["spotify"]().follow_needs(artist) == ""
