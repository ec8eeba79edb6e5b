"""Label staff preview a draft campaign at its own address (the console's "View on site"): the page as fans will
see it once it is live, under a banner, with inert buttons; never cached, never indexed; fans get a 404."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from fans import pagecache
from fans.models import FunnelEvent, Subscription
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db
BANNER = "Preview — fans can't see this page yet"


@pytest.fixture(autouse=True)
def empty_page_cache():
    caches["pages"].clear()


@pytest.fixture
def draft():
    return make_campaign(slug="low-tide-lights", status="draft", page_text="Not announced yet.")


def page_of(client, campaign):
    return client.get(reverse("fans:campaign", args=[campaign.slug]))


def test_staff_see_a_draft_as_fans_will_once_it_is_live_under_a_preview_banner(staff_client, draft):
    response = page_of(staff_client, draft)

    assert response.status_code == 200
    html = response.content.decode()
    assert BANNER in html
    assert "Not announced yet." in html and "Pre-save on Spotify" in html  # the open page, not "closed"
    assert "This pre-save has closed" not in html
    assert '<meta name="robots" content="noindex">' in html and response["X-Robots-Tag"] == "noindex"
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert not FunnelEvent.objects.exists(), "a preview is no page view"
    assert BANNER not in page_of(staff_client, make_campaign()).content.decode(), "a live page is no preview"


def test_the_preview_s_buttons_are_inert(staff_client, draft):
    html = page_of(staff_client, draft).content.decode()

    buttons = re.findall(r"<button[^>]*>", html)
    assert buttons and all(" disabled" in button for button in buttons)
    assert "switched off in this preview" in html

    staff_client.post(reverse("fans:presave", args=[draft.slug, "spotify"]))  # posted anyway: nothing starts
    assert not Subscription.objects.exists()


def test_fans_and_staff_who_may_not_view_campaigns_still_get_a_404_before_and_after_a_preview(staff_client, draft):
    fan, temp = Client(), Client()
    temp.force_login(User.objects.create_user("temp", is_staff=True))
    assert page_of(fan, draft).status_code == 404  # remembered as missing by the page cache

    assert page_of(staff_client, draft).status_code == 200  # the preview goes past it
    assert page_of(fan, draft).status_code == 404 and page_of(temp, draft).status_code == 404
    assert caches["pages"].get(pagecache.key(draft.slug)) in (None, pagecache._MISSING)


def test_a_preview_past_its_release_date_has_inert_listen_links(staff_client):
    draft = make_campaign(slug="low-tide-lights", status="draft", release_in=dt.timedelta(days=-1))

    html = page_of(staff_client, draft).content.decode()

    listen = re.findall(r"<a [^>]*>Listen on [^<]*</a>", html)
    assert listen and all('aria-disabled="true"' in link and "href" not in link for link in listen)
    assert staff_client.get(reverse("fans:listen", args=[draft.slug, "spotify"])).status_code == 404  # why
