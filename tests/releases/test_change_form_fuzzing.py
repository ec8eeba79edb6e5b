"""The release change form posted with odd values, one field at a time and at random: never a 500. Every answer
is the form again with its errors (200) or a saved release (302) whose pages still render."""

import random

import pytest
from django.urls import reverse

from releases.models import Artist, Release, ReleaseLink
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db

HUGE = "x" * 100_000
CONTROL = "a\x01b\x1fc\x7f\u202e\u200b"
ODD_TEXT = ["", " ", HUGE, CONTROL, "\x00", "nul\x00inside", "\u00e9\u0301", "\U0001f3b5" * 300, "<script>x</script>",
            "' OR 1=1 --", "%s %(x)s {0}", "\\", "١٢٣"]  # fmt: skip
ODD_VALUES = {
    "artist": ["abc", "-1", "0", "99999999999999999999", "1.5", "1,2", "\x00", HUGE],
    "title": ODD_TEXT,
    "kind": ["ep", "ALBUM", HUGE, "\x00"],
    "upc": ODD_TEXT + ["0" * 13, "9" * 14, "-123456789012"],
    "isrc": ODD_TEXT + ["GBAYE2600001 ", "gbaye2600001"],
    "spotify_uri": ODD_TEXT
    + [
        "spotify:album:",
        "https://open.spotify.com/album/" + "A" * 22 + "?si=" + HUGE,
        "spotify:track:4aawyAB9vmqN3uQ7FjRGTy",
        "spotify:album:" + "\u00c4" * 22,
    ],  # fmt: skip
    "release_date": ODD_TEXT
    + [
        "2026-02-30",
        "0000-00-00",
        "0001-01-01",
        "9999-12-31",
        "99999-01-01",
        "-1",
        "2026-13-01",
        "1e9",
        "٢٠٢٦-٠١-٠١",
        "2026-01-01T00:00",
        "31/12/2030",
    ],  # fmt: skip
    "release_time": ODD_TEXT + ["25:00", "24:00", "12:60", "-1:00", "23:59:60", "1e9", "12:00:00.9999999", "noon"],
    "timezone": ODD_TEXT
    + [
        "Nope/Zone",
        "../../etc/passwd",
        "/etc/localtime",
        "UTC\x00",
        "posix/Europe/London",
        "right/UTC",
        "Factory",
        "Etc/GMT+14",
        "Etc/GMT-14",
        "EST5EDT",
        "utc",
        "Europe/London\n",
    ],  # fmt: skip
}
ODD_URLS = ["", "javascript:alert(1)", "ftp://example.com/a", "http://", "https://", "https://" + "a" * 600 + ".com",
            "http://[::1", "https://ex ample.com", "http://999.999.999.999", "//example.com", "example.com",
            "https://example.com/\x00", "https://例え.テスト/アルバム", CONTROL, HUGE]  # fmt: skip
ODD_PLATFORMS = ["", "myspace", "SPOTIFY", HUGE, "\x00"]
MANAGEMENT = ["", "abc", "-1", "1001", "99999999999999999999", "1.0"]


def valid(artist: Artist, release: Release | None = None, links: list[tuple[str, str]] = ()) -> dict:
    existing = list(release.links.order_by("pk")) if release else []
    data = {
        "artist": artist.pk,
        "title": "Night Swim",
        "kind": "album",
        "upc": "5012345678900",
        "isrc": "",
        "spotify_uri": "spotify:album:4aawyAB9vmqN3uQ7FjRGTy",
        "release_date": "2031-03-07",
        "release_time": "00:00",
        "timezone": "Europe/London",
        "links-TOTAL_FORMS": str(len(existing) + len(links)),
        "links-INITIAL_FORMS": str(len(existing)),
    }
    rows = [(link.pk, link.platform, link.url) for link in existing] + [("", p, u) for p, u in links]
    for i, (pk, platform, url) in enumerate(rows):
        data |= {f"links-{i}-id": pk, f"links-{i}-platform": platform, f"links-{i}-url": url}
        data |= {f"links-{i}-release": release.pk} if release else {}
    return data


def post(client, url: str, data: dict) -> int:
    response = client.post(url, data)
    assert response.status_code in (200, 302), (response.status_code, {k: str(v)[:60] for k, v in data.items()})
    if response.status_code == 302:  # what was saved still shows
        saved = Release.objects.latest("pk") if url.endswith("/add/") else Release.objects.get(pk=url.split("/")[-3])
        assert client.get(reverse("admin:releases_release_change", args=[saved.pk])).status_code == 200
    return response.status_code


@pytest.fixture
def release(db):
    campaign = make_campaign(status="draft")
    ReleaseLink.objects.create(release=campaign.release, platform="deezer", url="https://www.deezer.com/album/1")
    return campaign.release


def test_each_field_with_odd_values_is_never_a_500(staff_client, release):
    change = reverse("admin:releases_release_change", args=[release.pk])
    add = reverse("admin:releases_release_add")
    for field, values in ODD_VALUES.items():
        for value in values:
            post(staff_client, change, valid(release.artist, Release.objects.get(pk=release.pk)) | {field: value})
            post(staff_client, add, valid(release.artist) | {field: value})
    for key in ("links-TOTAL_FORMS", "links-INITIAL_FORMS"):
        for value in MANAGEMENT:
            post(staff_client, change, valid(release.artist, release) | {key: value})


def test_odd_listening_links_are_errors_on_the_form(staff_client, release):
    change = reverse("admin:releases_release_change", args=[release.pk])
    for url in ODD_URLS:
        assert post(staff_client, change, valid(release.artist, release, [("spotify", url)])) in (200, 302)
    for platform in ODD_PLATFORMS:
        assert post(staff_client, change, valid(release.artist, release, [(platform, "https://a.example/x")])) == 200
    assert (
        not ReleaseLink.objects.filter(release=release)
        .exclude(platform="deezer")
        .exclude(url__startswith="https://")
        .exists()
    ), "only web addresses were kept"


def test_a_second_link_for_a_platform_is_an_error_on_the_form(staff_client, release):
    change = reverse("admin:releases_release_change", args=[release.pk])
    twice_new = [("tidal", "https://tidal.com/album/1"), ("tidal", "https://tidal.com/album/2")]
    again = [("deezer", "https://www.deezer.com/album/2")]  # the release has a Deezer link already
    for links in (twice_new, again):
        response = staff_client.post(change, valid(release.artist, release, links))
        assert response.status_code == 200
        assert "Please correct the duplicate data for platform" in response.content.decode()
    assert sorted(release.links.values_list("platform", "url")) == [("deezer", "https://www.deezer.com/album/1")]


def test_a_hand_made_count_of_link_rows_is_refused_quickly(staff_client, release):
    change = reverse("admin:releases_release_change", args=[release.pk])
    for count in ("9", "1001", "99999999999999999999"):
        response = staff_client.post(change, valid(release.artist, release) | {"links-TOTAL_FORMS": count})
        assert response.status_code == 200
        assert "Please submit at most 8 forms" in response.content.decode()
        assert response.content.decode().count('name="links-7-url"') <= 1, "no more rows than platforms"


def test_a_link_added_meanwhile_in_another_tab_is_an_error_on_the_form_not_a_500(staff_client, release):
    """The page was opened before someone else added a Tidal link: Django compares only the rows posted."""
    change = reverse("admin:releases_release_change", args=[release.pk])
    opened = valid(release.artist, release, [("tidal", "https://tidal.com/album/mine")])
    ReleaseLink.objects.create(release=release, platform="tidal", url="https://tidal.com/album/theirs")

    response = staff_client.post(change, opened)

    assert response.status_code == 200
    assert "One listening link per platform: Tidal has two" in response.content.decode()
    assert sorted(release.links.values_list("url", flat=True)) == [
        "https://tidal.com/album/theirs",
        "https://www.deezer.com/album/1",
    ]


def test_two_links_trading_platforms_is_an_error_on_the_form_not_a_500(staff_client, release):
    ReleaseLink.objects.create(release=release, platform="tidal", url="https://tidal.com/album/1")
    change = reverse("admin:releases_release_change", args=[release.pk])
    data = valid(release.artist, release)
    for i in range(2):
        data[f"links-{i}-platform"] = {"deezer": "tidal", "tidal": "deezer"}[data[f"links-{i}-platform"]]

    response = staff_client.post(change, data)

    assert response.status_code == 200 and "can&#x27;t trade platforms" in response.content.decode()


def test_an_existing_link_moved_onto_another_s_platform_is_an_error_on_the_form(staff_client, release):
    ReleaseLink.objects.create(release=release, platform="tidal", url="https://tidal.com/album/1")
    change = reverse("admin:releases_release_change", args=[release.pk])
    data = valid(release.artist, release)
    tidal = next(i for i in range(2) if data[f"links-{i}-platform"] == "tidal")
    data[f"links-{tidal}-platform"] = "deezer"

    assert staff_client.post(change, data).status_code == 200
    assert sorted(release.links.values_list("platform", flat=True)) == ["deezer", "tidal"]


def test_random_mixtures_of_odd_values_are_never_a_500(staff_client, release):
    chance = random.Random(20261128)  # the same mixtures every run: a failure can be replayed
    change = reverse("admin:releases_release_change", args=[release.pk])
    platforms = [p for p, _ in ReleaseLink.Platform.choices]
    for _ in range(200):
        current = Release.objects.get(pk=release.pk)
        links = [
            (chance.choice(platforms + ODD_PLATFORMS), chance.choice(ODD_URLS + ["https://a.example/x"] * 5))
            for _ in range(chance.randint(0, 3))
        ]
        data = valid(current.artist, current, links)
        for field in chance.sample(list(ODD_VALUES), chance.randint(1, 4)):
            data[field] = chance.choice(ODD_VALUES[field])
        if chance.random() < 0.1:
            data[chance.choice(["links-TOTAL_FORMS", "links-INITIAL_FORMS"])] = chance.choice(MANAGEMENT)
        post(staff_client, change, data)
    assert staff_client.get(reverse("admin:releases_release_changelist")).status_code == 200
