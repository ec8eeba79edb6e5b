"""After the release the campaign URL is a smart link: the label's links and the services' own, ordered by the
fan's country and last choice; clicks go through our redirect, which only goes to that campaign's links. On a
per-market campaign, "after the release" is where the fan is."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from fans import signups, smartlink
from fans.errors import CampaignClosed
from fans.models import FunnelEvent
from releases.models import Campaign, ReleaseLink
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db
FRIDAY = dt.date(2026, 12, 4)
LINKS = {
    "apple_music": "https://music.apple.com/gb/album/first-light/1234567890",
    "deezer": "https://www.deezer.com/album/123456",
    "amazon_music": "https://music.amazon.com/albums/B0TEST",
    "youtube_music": "https://music.youtube.com/playlist?list=OLAK5uy_test",
}


@pytest.fixture
def released():
    campaign = make_campaign(release_in=-dt.timedelta(days=1))
    for platform, url in LINKS.items():
        ReleaseLink.objects.create(release=campaign.release, platform=platform, url=url)
    return campaign


def order(client, campaign, **headers) -> list[str]:
    html = client.get(reverse("fans:campaign", args=[campaign.slug]), **headers).content.decode()
    return re.findall(r'data-platform="([a-z_]+)"', html)


def test_every_link_and_the_services_own_listen_url_get_a_button(client, released):
    assert sorted(order(client, released)) == sorted([*LINKS, "spotify"])


def test_buttons_are_ordered_by_the_proxys_country_header(client, released):
    assert order(client, released, HTTP_CF_IPCOUNTRY="FR")[:2] == ["deezer", "spotify"]
    assert order(client, released, HTTP_CF_IPCOUNTRY="JP")[:3] == ["apple_music", "amazon_music", "youtube_music"]
    assert order(client, released, HTTP_CF_IPCOUNTRY="US")[:3] == ["spotify", "apple_music", "amazon_music"]


def test_without_the_header_accept_language_tells_the_country(client, released):
    assert order(client, released, HTTP_ACCEPT_LANGUAGE="ja-JP,ja;q=0.9,en;q=0.5")[0] == "apple_music"


def test_accept_language_counts_by_q_value_and_q0_is_not_acceptable(client, released):
    assert order(client, released, HTTP_ACCEPT_LANGUAGE="fr-FR;q=0.1, ja-JP;q=0.9")[0] == "apple_music"
    assert order(client, released, HTTP_ACCEPT_LANGUAGE="ja-JP;q=0, fr-FR")[:2] == ["deezer", "spotify"]


def test_the_header_is_ignored_when_the_setting_is_off(client, released, settings):
    settings.COUNTRY_HEADER = ""

    assert order(client, released, HTTP_CF_IPCOUNTRY="FR")[0] == "spotify"


def test_a_click_counts_redirects_and_is_remembered_first_next_time(client, released):
    response = client.get(reverse("fans:listen", args=[released.slug, "youtube_music"]), HTTP_CF_IPCOUNTRY="FR")

    assert response.status_code == 302
    assert response["Location"] == LINKS["youtube_music"]
    event = FunnelEvent.objects.get(kind="listen_click")
    assert (event.service, event.country, event.campaign) == ("youtube_music", "FR", released)
    assert response.cookies[smartlink.PREFERENCE_COOKIE].value == "youtube_music"
    assert order(client, released, HTTP_CF_IPCOUNTRY="FR")[:2] == ["youtube_music", "deezer"]


def test_the_redirect_only_goes_to_this_campaigns_own_links(client, released):
    other = make_campaign(slug="other-album", release_in=-dt.timedelta(days=1))
    ReleaseLink.objects.create(release=other.release, platform="tidal", url="https://tidal.com/album/999")

    assert client.get(reverse("fans:listen", args=[released.slug, "tidal"])).status_code == 404
    assert client.get(f"/{released.slug}/listen/https:evil.example/").status_code == 404
    response = client.get(reverse("fans:listen", args=[released.slug, "deezer"]) + "?next=https://evil.example/")
    assert response["Location"] == LINKS["deezer"]
    assert not FunnelEvent.objects.filter(kind="listen_click", service="tidal").exists()


def test_no_listen_redirect_before_the_release(client, campaign):
    ReleaseLink.objects.create(release=campaign.release, platform="deezer", url=LINKS["deezer"])
    release_at = campaign.release.release_at

    response = client.get(reverse("fans:listen", args=[campaign.slug, "deezer"]))

    assert response.status_code == 409
    html = response.content.decode()
    when = f"{release_at:%A} {release_at.day} {release_at:%B %Y at %H:%M} (UTC)"
    assert f"First Light isn&#x27;t out yet: it comes out on {when}." in html
    assert f'href="{reverse("fans:campaign", args=[campaign.slug])}"' in html
    assert not FunnelEvent.objects.filter(kind="listen_click").exists()


def test_a_forged_preference_cookie_changes_nothing(client, released):
    client.cookies[smartlink.PREFERENCE_COOKIE] = "<script>" * 50

    assert order(client, released, HTTP_CF_IPCOUNTRY="FR")[0] == "deezer"


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "JavaScript:alert(1)", "ftp://files.example/a"])
def test_a_link_that_is_not_a_web_page_gets_no_button_and_no_redirect(client, released, url):
    # A row saved before validation existed, or written by a script: never a button, never a redirect to it.
    ReleaseLink.objects.create(release=released.release, platform="tidal", url=url)

    assert "tidal" not in order(client, released)
    assert client.get(reverse("fans:listen", args=[released.slug, "tidal"])).status_code == 404


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://files.example/album", "data:text/html,hi"])
def test_staff_cannot_save_a_link_that_is_not_a_web_page(staff_client, released, url):
    from django.core.exceptions import ValidationError

    link = ReleaseLink(release=released.release, platform="tidal", url=url)
    with pytest.raises(ValidationError, match="http"):
        link.full_clean()


@pytest.fixture
def per_market_delivering():
    """Out at midnight where each fan is (London's time zone for the release), first markets fired already."""
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    release = campaign.release
    release.release_date, release.release_time, release.timezone = FRIDAY, dt.time(0, 0), "Europe/London"
    release.save()
    ReleaseLink.objects.create(release=release, platform="deezer", url=LINKS["deezer"])
    return campaign


def test_a_per_market_campaign_is_a_smart_link_where_it_is_out_and_a_pre_save_where_it_is_not(
    client, per_market_delivering
):
    """Friday 02:00 UTC: out in London and Auckland, five hours to go in New York. Fans there can still
    pre-save (the campaign is delivering to the others), with a countdown to their own midnight."""
    page = reverse("fans:campaign", args=[per_market_delivering.slug])
    listen = reverse("fans:listen", args=[per_market_delivering.slug, "deezer"])
    with time_machine.travel(dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC), tick=False):
        new_york = client.get(page, HTTP_CF_IPCOUNTRY="US").content.decode()
        auckland = client.get(page, HTTP_CF_IPCOUNTRY="NZ").content.decode()
        closed_for_us = client.get(listen, HTTP_CF_IPCOUNTRY="US").status_code
        opened_for_nz = client.get(listen, HTTP_CF_IPCOUNTRY="NZ").status_code
        started = client.post(
            reverse("fans:presave", args=[per_market_delivering.slug, "spotify"]), HTTP_CF_IPCOUNTRY="US"
        )

    assert "Pre-save on Spotify" in new_york and "Out now" not in new_york
    assert 'data-countdown="2026-12-04T05:00:00+00:00"' in new_york, "New York's midnight"
    assert "(America/New_York)" in new_york
    assert "Out now" in auckland and "Pre-save on Spotify" not in auckland
    assert (closed_for_us, opened_for_nz) == (409, 302)
    assert started.status_code == 302 and "/authorize" in started["Location"], "fans in New York may still pre-save"


def test_a_per_market_campaign_takes_email_sign_ups_only_where_the_release_is_not_out(per_market_delivering):
    with time_machine.travel(dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC), tick=False):
        assert signups.sign_up(per_market_delivering, "ny@fan.test", country="US").country == "US"
        with pytest.raises(CampaignClosed):
            signups.sign_up(per_market_delivering, "london@fan.test", country="GB")


def test_a_smart_link_click_where_it_is_not_out_yet_says_when_it_is_there(client, per_market_delivering):
    """Friday 02:00 UTC: out in London, not yet in New York (05:00 UTC) nor in São Paulo (03:00 UTC). A fan who
    follows a shared smart link there is told so, with their own release time, and led back to the campaign
    page (where they may still pre-save); not a 404 "no link for that platform"."""
    listen = reverse("fans:listen", args=[per_market_delivering.slug, "deezer"])
    with time_machine.travel(dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC), tick=False):
        new_york = client.get(listen, HTTP_CF_IPCOUNTRY="US")
        sao_paulo = client.get(listen, HTTP_CF_IPCOUNTRY="BR")
        london = client.get(listen, HTTP_CF_IPCOUNTRY="GB")
        unknown = client.get(reverse("fans:listen", args=[per_market_delivering.slug, "tidal"]), HTTP_CF_IPCOUNTRY="US")

    for response, zone in [(new_york, "America/New_York"), (sao_paulo, "America/Sao_Paulo")]:
        html = response.content.decode()
        assert response.status_code == 409
        assert (
            "First Light isn&#x27;t out in your country yet: it comes out there on Friday 4 December 2026 at 00:00 "
            f"({zone}), your local time."
        ) in html
        assert f'href="/{per_market_delivering.slug}/"' in html and "Back to the pre-save page" in html
        assert "no link for that platform" not in html and "Error 409" not in html
        assert smartlink.PREFERENCE_COOKIE not in response.cookies
    assert london.status_code == 302 and london["Location"] == LINKS["deezer"]
    assert unknown.status_code == 404, "a platform the release has no link for stays a 404"
    assert list(FunnelEvent.objects.filter(kind="listen_click").values_list("country", flat=True)) == ["GB"]
