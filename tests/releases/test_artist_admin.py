"""The artist admin: search and the number of releases."""

import pytest
from django.urls import reverse

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
