"""The playlist in a fan's words: Spotify's list names it, and Spotify is asked for playlist-modify-private, only
where the campaign offers a playlist; the other services' lists don't change; release day makes what was agreed."""

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.urls import reverse

from delivery import engine
from delivery.sandbox import demo_catalog
from delivery.services.spotify import ACTION_WORDS
from fans import consent
from fans.models import ConsentRecord
from tests.conftest import make_campaign
from tests.fans.test_honest_actions import promised
from tests.fans.test_oauth_callback import presave, start_presave

pytestmark = pytest.mark.django_db

NAME = "Glass Harbour — Pre-saves"
PLAYLIST_WORDS = ACTION_WORDS["playlist"].format(playlist=NAME)


def lists_on_the_page(client, campaign) -> dict[str, list[str]]:
    """Each service's "What you allow" list, in plain text, by service key."""
    page = client.get(reverse("fans:campaign", args=[campaign.slug])).content.decode()
    lists = re.findall(r'<div class="consent-service" id="consent-(\w+)">.*?<ul>(.*?)</ul>', page, re.DOTALL)
    return {key: [unescape(item) for item in re.findall(r"<li>(.*?)</li>", items)] for key, items in lists}


def requested_scope(client, campaign) -> list[str]:
    return dict(parse_qsl(urlsplit(start_presave(client, campaign)).query))["scope"].split()


def test_spotifys_list_names_the_playlist_and_asks_for_its_scope_only_where_the_campaign_offers_it(client, sandbox):
    with_playlist = make_campaign(slug="with-playlist", playlist_name=NAME)
    without = make_campaign(slug="without-playlist")

    offered = lists_on_the_page(client, with_playlist)
    assert PLAYLIST_WORDS == (
        "Create a private playlist “Glass Harbour — Pre-saves” in your Spotify account on release day, and add this "
        "release to it."
    )
    assert offered["spotify"][-2:] == [ACTION_WORDS["save"], PLAYLIST_WORDS]
    assert not any("playlist" in words.lower() for key in ("apple_music", "deezer") for words in offered[key])
    assert requested_scope(client, with_playlist) == ["user-library-modify", "playlist-modify-private"]

    assert not any("playlist" in words.lower() for words in sum(lists_on_the_page(client, without).values(), []))
    assert requested_scope(client, without) == ["user-library-modify"]


def test_a_fan_who_agreed_to_the_playlist_gets_it_on_release_day(client, sandbox):
    campaign = make_campaign(playlist_name=NAME, services=["spotify"])

    _, response = presave(client, campaign)

    record = ConsentRecord.objects.get()
    assert record.scopes == ["user-library-modify", "playlist-modify-private"]
    assert record.wording_version == consent.WORDING_VERSION
    thanks = promised(client.get(response["Location"]).content.decode())
    assert thanks == [ACTION_WORDS["save"], ACTION_WORDS["playlist"].format(playlist=NAME)]

    engine.deliver_campaign(campaign.pk)

    [playlist] = sandbox.playlists("alice")
    assert (playlist["name"], playlist["public"]) == (NAME, False)
    assert playlist["items"] == [
        f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_1_ID}",
        f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_2_ID}",
    ]


def test_a_pre_save_that_only_adds_to_a_playlist_says_so_on_the_thank_you_page(client, sandbox):
    campaign = make_campaign(save_release=False, playlist_name=NAME, services=["spotify"])

    assert requested_scope(client, campaign) == ["playlist-modify-private"]
    _, response = presave(client, campaign)

    thanks = client.get(response["Location"]).content.decode()
    assert promised(thanks) == [ACTION_WORDS["playlist"].format(playlist=NAME)]
    assert "can't do" not in thanks
