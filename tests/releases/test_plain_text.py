"""Staff-typed names and words hold no control characters: refused with a message naming the field, not a 500
(PostgreSQL refuses a NUL) nor an escape or line break reaching fans' pages, emails and CSVs."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from releases.models import Artist
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def test_the_artist_form_refuses_a_name_with_a_control_character(client, label_staff):
    client.force_login(label_staff)

    response = client.post(reverse("admin:releases_artist_add"), {"name": "Nova\x1b[2JLark", "spotify_uri": ""})

    assert response.status_code == 200
    assert "The name can&#x27;t hold control characters" in response.content.decode()
    assert not Artist.objects.exists()


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("release", "title", "First\tLight"),
        ("campaign", "subtitle", "Out now\nfor real"),
        ("campaign", "page_text", "Hello\x1b[31m"),
        ("artist", "name", "Nova\u200b\x85Lark"),
    ],
)
def test_each_staff_text_field_refuses_a_control_character_naming_itself(model, field, value):
    campaign = make_campaign()
    instance = {"campaign": campaign, "release": campaign.release, "artist": campaign.release.artist}[model]
    setattr(instance, field, value)

    with pytest.raises(ValidationError) as caught:
        instance.full_clean()

    assert "can't hold control characters" in caught.value.message_dict[field][0]


def test_the_page_text_keeps_a_textareas_line_breaks_and_tabs():
    campaign = make_campaign()
    campaign.page_text = "First line\r\n\tindented\nlast"

    campaign.full_clean()
