"""What a fan is told they allow, the scopes asked for, the thank-you page and release day all say the same:
save only when the campaign saves, follow only when it follows and the service can."""

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.urls import reverse

from delivery import engine
from delivery.sandbox import demo_catalog
from delivery.services import get_service
from delivery.services.apple_music import ACTION_WORDS as APPLE_MUSIC_WORDS
from delivery.services.deezer import ACTION_WORDS as DEEZER_WORDS
from delivery.services.spotify import ACTION_WORDS as SPOTIFY_WORDS
from fans import consent
from fans.models import ConsentRecord
from tests.conftest import make_campaign, make_subscription
from tests.delivery.test_apple_music import presave_with_apple_music
from tests.delivery.test_deezer import presave_with_deezer
from tests.fans.test_oauth_callback import presave, start_presave

pytestmark = pytest.mark.django_db

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
ARTIST_URI = f"spotify:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"


def what_you_allow(client, campaign) -> str:
    html = client.get(reverse("fans:campaign", args=[campaign.slug])).content.decode()
    return unescape(html.split('<section class="consent"')[1].split("</section>")[0])


def lead(html: str, which: int = 0) -> str:
    """The thank-you page's sentence about release day (the `which`th pre-save's), in plain text."""
    words = re.sub(r"<[^>]+>", "", html.split('<p class="lead">')[1 + which].split("</p>")[0])
    return " ".join(unescape(words).split())


def promised(html: str, which: int = 0) -> list[str]:
    """What the thank-you page says release day will do (the `which`th pre-save's), item by item."""
    block = html.split('<ul class="thanks-actions">')[1 + which].split("</ul>")[0]
    return [unescape(item) for item in re.findall(r"<li>(.*?)</li>", block)]


def test_a_campaign_that_only_follows_asks_spotify_for_the_follow_only_and_says_so(client, sandbox):
    campaign = make_campaign(save_release=False, follow_artist=True, services=["spotify"])

    allowed = what_you_allow(client, campaign)
    assert SPOTIFY_WORDS["follow"] in allowed and SPOTIFY_WORDS["save"] not in allowed
    scope = dict(parse_qsl(urlsplit(start_presave(client, campaign)).query))["scope"]
    assert scope == "user-follow-modify"

    _, response = presave(client, campaign)
    assert ConsentRecord.objects.get().scopes == ["user-follow-modify"]
    thanks = client.get(response["Location"]).content.decode()
    assert "On Spotify, as you allowed, we'll:" in lead(thanks)
    assert promised(thanks) == [SPOTIFY_WORDS["follow"]]

    engine.deliver_campaign(campaign.pk)
    library = sandbox.library("alice")
    assert (library["saved"], library["following"]) == ([], [ARTIST_URI])


def test_the_legacy_library_api_follows_with_the_follow_scope_only(sandbox, settings):
    settings.SPOTIFY_LIBRARY_API = "legacy"
    campaign = make_campaign(save_release=False, follow_artist=True, services=["spotify"])
    assert get_service("spotify").scopes_for(campaign, email_opt_in=False) == ["user-follow-modify"]

    make_subscription(campaign, sandbox, "bob", scope="user-follow-modify")
    engine.deliver_campaign(campaign.pk)
    assert sandbox.library("bob")["following"] == [ARTIST_URI]
    assert {write["endpoint"] for write in sandbox.writes("bob")} == {"PUT /v1/me/following"}


def test_deezer_names_the_follow_only_where_the_campaign_offers_it(client, sandbox):
    deezer = get_service("deezer")
    plain = make_campaign(slug="no-follow", services=["deezer"])
    following = make_campaign(slug="with-follow", follow_artist=True, services=["deezer"])
    only_following = make_campaign(slug="only-follow", save_release=False, follow_artist=True, services=["deezer"])

    assert not any("follow" in words.lower() for words in consent.service_consent(deezer, plain).always)
    assert "follow" not in what_you_allow(client, plain).lower()
    assert DEEZER_WORDS["save"] in what_you_allow(client, plain)
    assert consent.service_consent(deezer, following).always[-2:] == [DEEZER_WORDS["save"], DEEZER_WORDS["follow"]]
    assert consent.service_consent(deezer, only_following).always[-1] == DEEZER_WORDS["follow"]
    assert DEEZER_WORDS["save"] not in what_you_allow(client, only_following)
    assert "manage_library" in deezer.scopes_for(only_following, email_opt_in=False)


def test_the_apple_music_thank_you_page_promises_no_follow_where_spotifys_does(client, sandbox):
    campaign = make_campaign(follow_artist=True, services=["spotify", "apple_music"])

    response = presave_with_apple_music(client, campaign, sandbox.authorize_apple_music("chloe"))

    assert response.status_code == 302 and response["Location"] == reverse("fans:thanks", args=[campaign.slug])
    thanks = client.get(response["Location"]).content.decode()
    assert promised(thanks) == [APPLE_MUSIC_WORDS["save"]]
    assert "follow" not in " ".join(consent.service_consent(get_service("apple_music"), campaign).always).lower()

    _, response = presave(client, campaign)
    thanks = client.get(response["Location"]).content.decode()
    assert promised(thanks, 1) == [SPOTIFY_WORDS["save"], SPOTIFY_WORDS["follow"]]  # after the Apple Music one


def test_the_deezer_thank_you_page_promises_what_its_consent_said_in_the_same_words(client, sandbox):
    campaign = make_campaign(follow_artist=True, services=["deezer"])
    allowed = what_you_allow(client, campaign)

    response = presave_with_deezer(client, campaign, "alice")

    thanks = client.get(response["Location"]).content.decode()
    assert promised(thanks) == [DEEZER_WORDS["save"], DEEZER_WORDS["follow"]]
    assert all(words in allowed for words in promised(thanks))
    assert "On Deezer, as you allowed, we'll:" in lead(thanks) and "library" not in thanks.split("revoke-box")[0]


def test_the_thank_you_page_says_the_privacy_link_can_cancel_too(client, campaign, sandbox):
    _, response = presave(client, campaign)

    html = client.get(response["Location"]).content.decode()

    box = unescape(html.split('<section class="revoke-box"')[1].split("</section>")[0])
    assert "only copy" not in box
    assert "The link below, to what we hold about you, can cancel it too for 1\xa0week." in box
    privacy_url = re.search(r'class="privacy-link" href="([^"]+)"', html).group(1)
    privacy_page = client.get(privacy_url).content.decode()
    assert "Cancel this pre-save" in privacy_page, "the privacy page can cancel it, as the thank-you page says"


def test_spotifys_list_names_the_profile_it_shares_and_how_spotifys_own_screen_words_the_permissions(client, sandbox):
    """Spotify's screen asks to "Manage your saved content" where our list says "Save this release": the page
    names Spotify's wording, for the scopes asked only, and the name and account id every authorization shares."""
    saves = what_you_allow(client, make_campaign(slug="saves", services=["spotify", "deezer"]))
    spotify, deezer = saves.split("With Deezer")
    assert "See your Spotify name and account id." in spotify
    assert "Spotify's own screen words these permissions more broadly (“Manage your saved content”)" in spotify
    assert "Manage who you are following" not in spotify, "no follow asked, none named"
    assert "own screen" not in deezer and "See your Deezer name and account id." in deezer

    follows = what_you_allow(client, make_campaign(slug="follows", follow_artist=True, services=["spotify"]))
    assert "(“Manage your saved content”, “Manage who you are following”)" in follows
