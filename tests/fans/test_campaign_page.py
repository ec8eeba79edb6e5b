"""The public campaign page: what a fan sees before pre-saving, and after the release is out."""

import datetime as dt
import html
import re

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone

from delivery.sandbox import demo_catalog
from delivery.services.spotify import ACTION_WORDS, SCOPE_WORDS
from fans import urls as fans_urls
from fans.models import ConsentRecord, Fan
from fans.pages import Countdown
from fans.reserved import RESERVED_SLUGS, validate_campaign_slug
from tests.conftest import make_campaign
from tests.delivery.test_deezer import presave_with_deezer
from tests.fans.test_in_app_browsers import UAS

pytestmark = pytest.mark.django_db


def get_page(client, campaign):
    return client.get(reverse("fans:campaign", args=[campaign.slug]))


def test_live_campaign_shows_the_release_and_a_presave_button(client, campaign):
    campaign.subtitle = "The debut album"
    campaign.page_text = "Ten songs written by the sea.\n\nOut in December."
    campaign.save()

    response = get_page(client, campaign)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nova Lark" in html
    assert "First Light" in html
    assert "The debut album" in html
    assert "<p>Ten songs written by the sea.</p>" in html
    assert 'name="viewport"' in html
    assert "Pre-save on Spotify" in html
    assert f'action="{reverse("fans:presave", args=[campaign.slug, "spotify"])}"' in html
    assert 'class="cover cover-placeholder"' in html  # no cover uploaded: a neutral block with the title


def test_every_form_fetches_its_csrf_token_when_sent(client, campaign):
    html = get_page(client, campaign).content.decode()

    # The pre-save buttons' form and "Email me when it's out"
    assert html.count("<form") == html.count(f'data-token-url="{reverse("fans:form_token")}"') == 2
    assert "csrfmiddlewaretoken" not in html  # the cached page holds none (fans/pagecache.py)


def test_draft_campaign_is_not_found(client):
    draft = make_campaign(slug="secret-album", status="draft")

    response = get_page(client, draft)

    assert response.status_code == 404
    assert "First Light" not in response.content.decode()


def test_a_draft_takes_no_presave_and_has_no_thank_you_page(client):
    draft = make_campaign(slug="secret-album", status="draft")

    start = client.post(reverse("fans:presave", args=[draft.slug, "spotify"]))
    thanks = client.get(reverse("fans:thanks", args=[draft.slug]))

    assert start.status_code == thanks.status_code == 404
    assert "no pre-save at this address" in start.content.decode()
    assert "no pre-save at this address" in thanks.content.decode()


def test_unknown_slug_is_not_found_with_the_problem_page(client, db):
    response = client.get("/no-such-campaign/")

    assert response.status_code == 404
    assert "no pre-save at this address" in response.content.decode()


def test_email_opt_in_box_is_offered_unticked(client, campaign):
    html = get_page(client, campaign).content.decode()

    box = re.search(r"<input[^>]*name=\"email_opt_in\"[^>]*>", html)
    assert box is not None
    assert "checked" not in box.group(0)
    assert "Also email me when it drops" in html


def test_no_email_box_when_the_campaign_does_not_offer_it(client):
    campaign = make_campaign(offer_email_optin=False)

    html = get_page(client, campaign).content.decode()

    assert 'name="email_opt_in"' not in html
    assert SCOPE_WORDS["user-read-email"] not in html


def test_a_service_that_shares_no_email_says_the_box_does_nothing_with_it(client, sandbox):
    """Apple Music never shares the fan's address: the fan learns it before choosing, not on the thank-you page."""
    note = "Apple Music doesn't share your email address with us, so ticking “Also email me when it drops” gets you "
    page = " ".join(html.unescape(get_page(client, make_campaign()).content.decode()).split())
    assert note in page
    assert "Spotify doesn't share" not in page and "Deezer doesn't share" not in page

    page = html.unescape(get_page(client, make_campaign(slug="no-box", offer_email_optin=False)).content.decode())
    assert "doesn't share your email" not in page


def test_each_presave_button_is_described_by_what_the_fan_allows_with_that_service(client, sandbox):
    """The words come after the buttons on the page: a screen reader reads them with the button's name."""
    page = get_page(client, make_campaign()).content.decode()
    buttons = re.findall(r'<button[^>]*aria-describedby="([^"]+)"[^>]*>Pre-save on ([^<]+)</button>', page)

    assert [label for _, label in buttons] == ["Spotify", "Apple Music", "Deezer"]
    for described_by, label in buttons:
        block = page.split(f'id="{described_by}"', 1)[1].split('<div class="consent-service"', 1)[0]
        assert f"With {label}" in html.unescape(block) and "<li>" in block


def test_page_says_in_plain_words_what_the_fan_allows(client, campaign):
    html = get_page(client, campaign).content.decode()

    assert ACTION_WORDS["save"] in html
    # Reading the email is only asked for when the box is ticked, and the page says so.
    only_if = html.index("Only if you tick")
    assert html.index(SCOPE_WORDS["user-read-email"]) > only_if
    assert "take this back any time" in html
    assert "our emails" not in html, "a pre-saving fan gets no email with a cancel link before release day"


def test_follow_words_only_when_the_campaign_follows_the_artist(client):
    plain = make_campaign(slug="no-follow")
    following = make_campaign(slug="with-follow", follow_artist=True)

    assert ACTION_WORDS["follow"] not in get_page(client, plain).content.decode()
    assert ACTION_WORDS["follow"] in get_page(client, following).content.decode()


def test_release_time_is_shown_in_the_release_time_zone(client, campaign):
    release = campaign.release
    release.release_date = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date()
    release.release_time = dt.time(9, 30)
    release.timezone = "Asia/Tokyo"
    release.save()

    html = get_page(client, campaign).content.decode()

    assert f"{release.release_date:%A} {release.release_date.day} {release.release_date:%B %Y} at 09:30" in html
    assert "Asia/Tokyo" in html


def test_countdown_is_rendered_on_the_server(client):
    campaign = make_campaign(release_in=dt.timedelta(days=3, hours=5, minutes=30))

    html = get_page(client, campaign).content.decode()

    assert re.search(r'data-unit="days">\s*3\s*<', html)
    assert re.search(r'data-unit="hours">\s*05\s*<', html)
    assert "js/countdown.js" in html


def test_countdown_carries_the_servers_seconds_until_release_for_phones_with_a_wrong_clock(client):
    campaign = make_campaign(release_in=dt.timedelta(hours=2))

    html = get_page(client, campaign).content.decode()
    again = get_page(client, campaign).content.decode()  # the cached page is filled anew at each request

    for page in (html, again):
        left = int(re.search(r'data-seconds-left="(\d+)"', page).group(1))
        assert 7_190 <= left <= 7_200


def test_a_countdown_reads_the_clock_once_so_its_parts_and_seconds_left_agree():
    release_at = dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC)
    with time_machine.travel(dt.datetime(2026, 12, 4, tzinfo=dt.UTC), tick=False) as traveller:
        countdown = Countdown(release_at)
        parts = countdown.parts
        traveller.shift(dt.timedelta(seconds=5))  # a page view filled across a second's boundary

        assert parts[-1] == ("30", "seconds")
        assert countdown.seconds_left == "30"


def test_released_campaign_says_out_now_with_a_link_to_listen(client):
    campaign = make_campaign(release_in=-dt.timedelta(days=1))

    response = get_page(client, campaign)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Out now" in html
    listen = reverse("fans:listen", args=[campaign.slug, "spotify"])
    assert f'href="{listen}"' in html  # through our redirect, which counts the click
    assert client.get(listen)["Location"] == f"https://open.spotify.com/album/{demo_catalog.NOVA_LARK_ALBUM_ID}"
    assert "Pre-save on Spotify" not in html
    assert "<form" not in html


PITCH = "Pre-save First Light and it lands in your library as soon as it is out."


def test_the_page_text_shows_only_while_the_pre_save_is_open(client):
    """Staff write it for the pre-save page (a pitch, as the demo's): under "Out now" or "This pre-save has
    closed" it would ask for what the page no longer offers. The state is read at each view, and the cached
    page of one state is not the page of another (fans/pagecache.py)."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1), page_text=PITCH)
    assert f"<p>{PITCH}</p>" in get_page(client, campaign).content.decode()

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        out = get_page(client, campaign).content.decode()
    campaign.status = "delivering"  # Deliver now, before the release time: closed
    campaign.save()
    closed = get_page(client, campaign).content.decode()

    assert "Out now" in out and PITCH not in out
    assert "This pre-save has closed" in closed and PITCH not in closed


def test_presaving_after_release_is_gone_with_its_out_now_and_a_link_to_listen(client):
    campaign = make_campaign(release_in=-dt.timedelta(hours=1))

    response = client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]))

    page = html.unescape(response.content.decode())
    assert response.status_code == 410
    assert "It's out now" in page
    assert f'href="{campaign.get_absolute_url()}"' in page  # the smart link
    assert "Listen now" in page


def test_presave_needs_a_post(client, campaign):
    response = client.get(reverse("fans:presave", args=[campaign.slug, "spotify"]))

    assert response.status_code == 405


def test_presave_on_an_unknown_service_is_not_found(client, campaign):
    response = client.post(reverse("fans:presave", args=[campaign.slug, "myspace"]))

    assert response.status_code == 404


def test_presave_on_a_disabled_service_is_not_found(client, campaign, settings):
    settings.SPOTIFY_ENABLED = False

    assert client.post(reverse("fans:presave", args=[campaign.slug, "spotify"])).status_code == 404
    assert "Pre-save on Spotify" not in get_page(client, campaign).content.decode()


def test_presave_on_a_service_the_campaign_does_not_offer_is_not_found(client, sandbox):
    campaign = make_campaign(services=["spotify"])

    response = client.post(reverse("fans:presave", args=[campaign.slug, "deezer"]))

    assert response.status_code == 404
    assert "This pre-save isn't offered on Deezer." in html.unescape(response.content.decode())
    assert client.post(reverse("fans:presave", args=[campaign.slug, "spotify"])).status_code == 302


def test_a_service_switched_on_later_with_nothing_to_do_is_not_offered(client, sandbox, settings):
    """Saved when Apple Music was off, a campaign that only follows must not offer it once it is on: Apple Music
    can't follow, so its fans would get nothing."""
    settings.APPLE_MUSIC_ENABLED = False
    campaign = make_campaign(save_release=False, follow_artist=True)
    campaign.full_clean()  # valid then: no service it offers has nothing to do
    settings.APPLE_MUSIC_ENABLED = True

    page = get_page(client, campaign).content.decode()

    assert "Pre-save on Spotify" in page and "Pre-save on Deezer" in page
    assert "Pre-save on Apple Music" not in page
    assert client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"])).status_code == 404


def _fixed_first_segments(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _fixed_first_segments(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            first = route.split("/", 1)[0]
            if first and "<" not in first:
                yield first


def test_every_fixed_top_level_path_is_a_reserved_slug():
    fixed = set(_fixed_first_segments(get_resolver().url_patterns))

    assert "oauth" in fixed and "revoke" in fixed
    assert fixed <= RESERVED_SLUGS


def test_no_fixed_path_is_taken_for_a_campaign_slug():
    """fans/urls.py tries the campaign page's pattern early: every fixed path still reaches its own view."""
    for pattern in fans_urls.urlpatterns:
        route = str(pattern.pattern)
        if "<" in route:
            continue
        assert resolve("/" + route).url_name == pattern.name, route


@pytest.mark.parametrize("slug", ["admin", "oauth", "Revoke", "privacy"])
def test_reserved_slug_is_refused_with_a_clear_message(slug):
    with pytest.raises(ValidationError) as error:
        validate_campaign_slug(slug)

    assert "a path the site itself uses" in error.value.messages[0]


def test_the_page_names_everything_a_presave_keeps(client, campaign, sandbox):
    presave_with_deezer(client, campaign, "alice")
    fan, record = Fan.objects.get(), ConsentRecord.objects.get()
    assert fan.country and record.ip_address  # kept beside the account's name and id

    kept = re.search(r'<p class="muted">(We keep [^<]*)</p>', get_page(client, campaign).content.decode()).group(1)

    assert "country" in kept and "IP address" in kept and "browser" in kept


def test_both_email_consents_say_the_email_notes_its_opens_and_clicks(client, campaign):
    """The release-day email carries an open pixel and counted links (fans/release_email.py): a fan ticking
    either email box is told so, not "nothing else"."""
    kept = re.search(r'<p class="muted">(We keep [^<]*)</p>', get_page(client, campaign).content.decode()).group(1)
    assert "your email address, if you tick the box, with whether our email to it is opened" in kept

    in_instagram = client.get(campaign.get_absolute_url(), headers={"user-agent": UAS["instagram"]})
    assert "noting whether it is opened and its links clicked" in in_instagram.content.decode()  # email-only


def test_without_javascript_the_countdown_says_to_reload_at_release_time(client, django_assert_max_num_queries):
    """countdown.js keeps the countdown moving and turns it into "It's out!" at zero; without it the page says so
    in a <noscript> line, part of the cached page (a warm view still makes at most one query)."""
    campaign = make_campaign(release_in=dt.timedelta(hours=2))

    get_page(client, campaign)
    with django_assert_max_num_queries(1):
        before = get_page(client, campaign).content.decode()
    with time_machine.travel(timezone.now() + dt.timedelta(hours=3)):
        after = get_page(client, campaign).content.decode()

    line = re.search(r"<noscript>(.*?)</noscript>", before, re.DOTALL).group(1)
    assert "Reload this page at release time" in line and "listen" in line
    noscript = before.index("<noscript>")
    assert before.index('class="countdown"') < noscript < before.index("</section>", noscript), "under the countdown"
    assert "<noscript>" not in after and "Out now" in after
