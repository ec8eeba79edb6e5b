"""The release admin: times in the release's zone and in UTC, and identifier errors shown on their fields."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from releases.models import Artist, Campaign, Release
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db

ADD = reverse("admin:releases_release_add")
UPC = "5012345678900"


@pytest.fixture
def artist(db):
    return Artist.objects.create(name="Nova Lark", spotify_uri="spotify:artist:0OdUWJ0sBjDrqHygGUXeCF")


def form_data(artist: Artist, **overrides) -> dict:
    return {
        "artist": artist.pk,
        "title": "Night Swim",
        "kind": "album",
        "upc": UPC,
        "isrc": "",
        "spotify_uri": "spotify:album:4aawyAB9vmqN3uQ7FjRGTy",
        "release_date": "2031-03-07",
        "release_time": "00:00",
        "timezone": "Europe/London",
        # The listening-links inline's management form, with no links.
        "links-TOTAL_FORMS": "0",
        "links-INITIAL_FORMS": "0",
        **overrides,
    }


def test_a_valid_release_is_saved_with_its_utc_instant(staff_client, artist):
    response = staff_client.post(ADD, form_data(artist, timezone="America/New_York"))
    assert response.status_code == 302
    release = Release.objects.get(title="Night Swim")
    assert release.release_at == dt.datetime(2031, 3, 7, 5, 0, tzinfo=dt.UTC)


def test_changelist_shows_the_local_and_the_utc_release_time(staff_client, artist):
    staff_client.post(ADD, form_data(artist, release_time="09:30", timezone="Asia/Tokyo"))

    response = staff_client.get(reverse("admin:releases_release_changelist"))

    html = response.content.decode()
    assert "2031-03-07 09:30 Asia/Tokyo" in html
    assert "2031-03-07 00:30 UTC" in html


def test_change_page_renders(staff_client, campaign):
    response = staff_client.get(reverse("admin:releases_release_change", args=[campaign.release_id]))
    assert response.status_code == 200
    assert f"{campaign.release.release_at:%Y-%m-%d %H:%M} UTC" in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("upc", "12345", "A UPC/EAN has 12 or 13 digits."),
        ("upc", "50123456789AB", "A UPC/EAN has 12 or 13 digits."),
        ("isrc", "GBAYE26000XY", "An ISRC looks like GBAYE2600001"),
        ("isrc", "GB-AYE-26-00001", "at most 12 characters"),
        (
            "spotify_uri",
            "https://open.spotify.com/playlist/4aawyAB9vmqN3uQ7FjRGTy",
            "Paste the release's Spotify URI",
        ),
        ("spotify_uri", "spotify:album:short", "Paste the release's Spotify URI"),
        ("upc", "١٢٣٤٥٦٧٨٩٠١٢", "A UPC/EAN has 12 or 13 digits."),  # Arabic-Indic digits: no lookup finds them
        ("isrc", "GBAYE٢٦٠٠٠٠١", "An ISRC looks like GBAYE2600001"),
        ("timezone", "Mars/Olympus", "is not a time zone name"),
        ("timezone", "localtime", "is not a time zone name"),  # the server's own zone: no market's clock
        ("timezone", "Factory", "is not a time zone name"),
        ("timezone", "posixrules", "is not a time zone name"),
    ],
)
def test_malformed_identifier_is_an_error_on_its_field(staff_client, artist, field, value, message):
    response = staff_client.post(ADD, form_data(artist, **{field: value}))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Release.objects.exists()


@pytest.mark.parametrize("value", ["abc", "1.0", "\x00", "²"])
def test_an_artist_that_is_no_key_is_an_error_on_its_field_not_a_500(staff_client, artist, value):
    """Only a form made by hand sends this; Django's autocomplete widget looked it up as it was (ValueError)."""
    response = staff_client.post(ADD, {**form_data(artist), "artist": value})

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["artist"]
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    ("day", "time", "zone"),
    [
        ("9999-12-31", "23:00", "America/Los_Angeles"),  # its UTC instant is past the year 9999
        ("0001-01-01", "00:00", "Etc/GMT-14"),  # … or before the year 1
        ("0001-03-01", "00:00", "UTC"),  # the campaign page's "authorization expires first" would be before year 1
    ],
)
def test_a_release_date_out_of_range_is_an_error_on_its_field(staff_client, artist, day, time, zone):
    response = staff_client.post(ADD, form_data(artist, release_date=day, release_time=time, timezone=zone))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["release_date"] == [
        "Enter a release date between the years 1900 and 2999."
    ]
    assert not Release.objects.exists()


@pytest.mark.parametrize(
    "link",
    [
        "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy",
        "https://open.spotify.com/intl-de/album/4aawyAB9vmqN3uQ7FjRGTy?si=abc123",
        " spotify:album:4aawyAB9vmqN3uQ7FjRGTy ",
    ],
)
def test_a_pasted_spotify_share_link_becomes_the_uri(staff_client, artist, link):
    response = staff_client.post(ADD, form_data(artist, spotify_uri=link))
    assert response.status_code == 302
    assert Release.objects.get().spotify_uri == "spotify:album:4aawyAB9vmqN3uQ7FjRGTy"


def test_a_track_needs_its_isrc(staff_client, artist):
    response = staff_client.post(
        ADD, form_data(artist, kind="track", spotify_uri="spotify:track:4aawyAB9vmqN3uQ7FjRGTy")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["isrc"] == ["A track needs its ISRC."]


def test_moving_a_live_campaigns_release_into_the_past_is_refused(staff_client, campaign):
    release = campaign.release
    yesterday = dt.date.today() - dt.timedelta(days=1)
    data = form_data(
        release.artist,
        title=release.title,
        upc=release.upc,
        spotify_uri=release.spotify_uri,
        release_date=yesterday.isoformat(),
        timezone="UTC",
    )

    response = staff_client.post(reverse("admin:releases_release_change", args=[release.pk]), data)

    assert response.status_code == 200
    assert "would start delivering to fans at once" in str(response.context["adminform"].form.non_field_errors())
    assert Release.objects.get(pk=release.pk).release_at == release.release_at


def test_a_per_market_campaign_s_release_may_not_move_where_its_first_market_is_past(staff_client, db):
    """Twelve hours from now in London is already past in Kiribati (UTC+14), where a per-market campaign fires
    first; the same time is fine for a campaign that fires at one instant."""
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET)
    release = campaign.release
    soon = timezone.now().astimezone(dt.UTC) + dt.timedelta(hours=12)
    data = form_data(
        release.artist,
        title=release.title,
        upc=release.upc,
        spotify_uri=release.spotify_uri,
        release_date=soon.date().isoformat(),
        release_time=soon.strftime("%H:%M"),
        timezone="UTC",
    )
    url = reverse("admin:releases_release_change", args=[release.pk])

    refused = staff_client.post(url, data)

    errors = str(refused.context["adminform"].form.non_field_errors())
    assert refused.status_code == 200 and "for a per-market campaign, its first market" in errors
    Campaign.objects.filter(pk=campaign.pk).update(firing=Campaign.Firing.INSTANT)
    assert staff_client.post(url, data).status_code == 302


def test_a_draft_campaigns_release_may_move_into_the_past(staff_client, db):
    release = make_campaign(status="draft").release
    data = form_data(
        release.artist,
        title=release.title,
        upc=release.upc,
        spotify_uri=release.spotify_uri,
        release_date=(dt.date.today() - dt.timedelta(days=1)).isoformat(),
        timezone="UTC",
    )
    response = staff_client.post(reverse("admin:releases_release_change", args=[release.pk]), data)
    assert response.status_code == 302


def test_a_uri_staff_type_is_recorded_as_theirs(staff_client, artist):
    staff_client.post(ADD, form_data(artist))
    assert Release.objects.get(title="Night Swim").spotify_uri_found_by == "staff"


def test_changing_the_upc_a_uri_was_found_by_forgets_that_uri(staff_client, campaign):
    """The URI delivery found by a wrong UPC belongs to another release: corrected, the UPC is looked up again."""
    release = campaign.release
    Release.objects.filter(pk=release.pk).update(spotify_uri_found_by="upc")
    url = reverse("admin:releases_release_change", args=[release.pk])
    kept = form_data(release.artist, title=release.title, upc=release.upc, spotify_uri=release.spotify_uri)
    assert staff_client.post(url, kept).status_code == 302
    assert Release.objects.get(pk=release.pk).spotify_uri == release.spotify_uri, "an edit elsewhere keeps it"

    corrected = {**kept, "upc": "5012345678917"}
    assert staff_client.post(url, corrected).status_code == 302

    release.refresh_from_db()
    assert (release.upc, release.spotify_uri, release.spotify_uri_found_by) == ("5012345678917", "", "")
