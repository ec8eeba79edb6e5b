"""The artist admin: search and the number of releases."""

import warnings

import pytest
from django.core.paginator import UnorderedObjectListWarning
from django.urls import reverse

from releases.models import Artist
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def test_changelist_counts_releases_and_searches_by_name(client, label_staff):
    make_campaign()
    client.force_login(label_staff)

    response = client.get(reverse("admin:releases_artist_changelist"), {"q": "nova"})

    assert response.status_code == 200
    [artist] = response.context["cl"].result_list
    assert artist.release_count == 1
    assert '<td class="field-release_count">1</td>' in response.content.decode()
    assert not client.get(reverse("admin:releases_artist_changelist"), {"q": "nobody"}).context["cl"].result_list


def test_change_page_renders(client, label_staff):
    artist = make_campaign().release.artist
    client.force_login(label_staff)
    assert client.get(reverse("admin:releases_artist_change", args=[artist.pk])).status_code == 200


def test_the_release_forms_artist_search_lists_artists_by_name(client, label_staff):
    """The release count's GROUP BY drops Artist.Meta.ordering: the search paginated an unordered list (Django's
    UnorderedObjectListWarning in the logs, and pages that may repeat or skip artists)."""
    for name in ("Nova Lane", "Aurora Vale", "Midnight Echo"):
        Artist.objects.create(name=name)
    client.force_login(label_staff)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnorderedObjectListWarning)
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": "releases", "model_name": "release", "field_name": "artist", "term": ""},
        )

    assert response.status_code == 200
    assert [result["text"] for result in response.json()["results"]] == ["Aurora Vale", "Midnight Echo", "Nova Lane"]
