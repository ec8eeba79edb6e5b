"""The campaign's playlist: a name staff fill in next to save and follow (blank: none), checked before it can
reach a fan's account, and done only by the services that can (Spotify)."""

import html

import pytest

from releases.models import Campaign
from tests.conftest import make_campaign
from tests.releases.test_campaign_actions import change_url
from tests.releases.test_campaign_admin import form_data

pytestmark = pytest.mark.django_db

NAME = "Glass Harbour — Pre-saves"


def errors_of(response) -> dict:
    assert response.status_code == 200, "refused: the form again"
    return response.context["adminform"].form.errors


def test_the_playlist_name_is_set_next_to_save_and_follow(staff_client, sandbox):
    campaign = make_campaign()

    page = staff_client.get(change_url(campaign)).content.decode()
    fields = [page.index(f'name="{name}"') for name in ("save_release", "follow_artist", "playlist_name")]
    assert fields == sorted(fields)
    response = staff_client.post(change_url(campaign), form_data(campaign, playlist_name=f"  {NAME} "))

    assert response.status_code == 302, errors_of(response)
    assert Campaign.objects.get().playlist_name == NAME


def test_a_campaign_that_only_adds_to_a_playlist_offers_only_the_services_that_can(staff_client, sandbox):
    campaign = make_campaign()
    data = form_data(campaign, save_release=False, playlist_name=NAME, services=["spotify", "apple_music", "deezer"])

    refused = staff_client.post(change_url(campaign), data)

    assert errors_of(refused)["services"] == [
        f"{label} can't add releases to playlists, so its fans would get nothing from a pre-save that only adds "
        f"the release to a playlist. Save the release too, or don't offer {label} (tick only the services to offer)."
        for label in ("Apple Music", "Deezer")
    ]
    only_spotify = staff_client.post(change_url(campaign), {**data, "services": ["spotify"]})
    assert only_spotify.status_code == 302, errors_of(only_spotify)
    campaign = Campaign.objects.get()
    assert (campaign.save_release, campaign.playlist_name) == (False, NAME)


def test_apple_music_that_can_neither_follow_nor_add_to_a_playlist_says_both(staff_client, sandbox):
    campaign = make_campaign()
    data = form_data(campaign, save_release=False, follow_artist="on", playlist_name=NAME, services=["apple_music"])

    assert errors_of(staff_client.post(change_url(campaign), data))["services"] == [
        "Apple Music can't follow artists or add releases to playlists, so its fans would get nothing from a "
        "pre-save that only follows the artist and adds the release to a playlist. Save the release too, or don't "
        "offer Apple Music (tick only the services to offer)."
    ]


CONTROL = (
    "The playlist name can't hold control characters (such as a line break or a tab); one may have been pasted with "
    "the text, invisible: type it again."
)


def invisible(named: str) -> str:
    return (
        f"The playlist name can't hold a {named}, an invisible character that changes how the text reads; it may "
        "have been pasted with the text: type it again."
    )


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
        ("Glass\nHarbour", CONTROL),
        ("Glass\tHarbour", CONTROL),
        ("Glass\x00Harbour", "Null characters are not allowed."),
        ("Glass\x85Harbour", CONTROL),
        # What fans read in their own account: "Glass Harbour — seva-erP" spoofed by a right-to-left override.
        ("Glass Harbour — \u202ePre-saves", invisible("right-to-left override (U+202E)")),
        ("Glass\u200bHarbour", invisible("zero width space (U+200B)")),
        ("\ufeffGlass Harbour", invisible("zero width no-break space (U+FEFF)")),
    ],
)
def test_a_playlist_name_too_long_or_with_control_or_invisible_characters_is_refused(
    staff_client, sandbox, name, error
):
    campaign = make_campaign()

    response = staff_client.post(change_url(campaign), form_data(campaign, playlist_name=name))

    assert errors_of(response)["playlist_name"] == [error]
    assert Campaign.objects.get().playlist_name == ""


def test_a_playlist_name_may_hold_the_joiners_emoji_and_scripts_need(staff_client, sandbox):
    campaign = make_campaign()
    name = "Glass Harbour \U0001f469\u200d\U0001f3a4 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # ZWJ, ZWNJ

    response = staff_client.post(change_url(campaign), form_data(campaign, playlist_name=name))

    assert response.status_code == 302, errors_of(response)
    assert Campaign.objects.get().playlist_name == name


def test_the_services_that_cannot_add_to_a_playlist_warn_staff(staff_client, sandbox):
    campaign = make_campaign(playlist_name=NAME)

    page = html.unescape(staff_client.get(change_url(campaign)).content.decode())

    for label in ("Apple Music", "Deezer"):
        assert f"{label} can't add the release to a playlist: its fans get the rest of the pre-save" in page
    assert "Spotify can't add" not in page
