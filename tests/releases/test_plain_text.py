"""Staff-typed names and words hold no control characters: refused with a message naming the field, not a 500
(PostgreSQL refuses a NUL) nor an escape or line break reaching fans' pages, emails and CSVs."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from releases.models import Artist, Campaign
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


def test_the_artist_form_refuses_a_right_to_left_override_naming_it(client, label_staff):
    """A bidi override makes "Nova Lark\u202ekral" read otherwise than it is, on the console and the fan page."""
    client.force_login(label_staff)

    response = client.post(reverse("admin:releases_artist_add"), {"name": "Nova\u202eLark", "spotify_uri": ""})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == [
        "The name can't hold a right-to-left override (U+202E), an invisible character that changes how the text "
        "reads; it may have been pasted with the text: type it again."
    ]
    assert not Artist.objects.exists()


def test_the_campaign_form_refuses_a_zero_width_space_in_its_subtitle(staff_client, sandbox):
    from tests.releases.test_campaign_actions import change_url
    from tests.releases.test_campaign_admin import form_data

    campaign = make_campaign(subtitle="Out now")

    response = staff_client.post(change_url(campaign), form_data(campaign, subtitle="Out\u200b now"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["subtitle"]
    assert errors == [
        "The subtitle can't hold a zero width space (U+200B), an invisible character that changes how the text "
        "reads; it may have been pasted with the text: type it again."
    ]
    assert Campaign.objects.get().subtitle == "Out now"


@pytest.mark.parametrize(
    ("model", "field", "value", "named"),
    [
        ("release", "title", "First\u200fLight", "right-to-left mark (U+200F)"),
        ("campaign", "subtitle", "\ufeffOut now", "zero width no-break space (U+FEFF)"),
        (
            "campaign",
            "page_text",
            "Hello\n\u2067world\u2069",
            "right-to-left isolate (U+2067) or a pop directional isolate (U+2069), invisible characters",
        ),
        (
            "artist",
            "name",
            "Nova\u202aLark\u202c",
            "left-to-right embedding (U+202A) or a pop directional formatting (U+202C), invisible",
        ),
        ("artist", "name", "Nova\u2060Lark", "word joiner (U+2060)"),
        ("release", "title", "\u061cFirst Light", "an arabic letter mark (U+061C)"),
        ("release", "title", "f\u2061(x)", "a function application (U+2061)"),
        ("campaign", "subtitle", "2\u20624", "an invisible times (U+2062)"),
        ("campaign", "page_text", "x\u2063y", "an invisible separator (U+2063)"),
        ("artist", "name", "1\u20642", "an invisible plus (U+2064)"),
        ("artist", "name", "Nova\u180eLark", "a mongolian vowel separator (U+180E)"),
        ("release", "title", "First Li\u00adght", "a soft hyphen (U+00AD)"),
        ("campaign", "subtitle", "Out\u034f now", "a combining grapheme joiner (U+034F)"),
    ],
)
def test_each_staff_text_field_refuses_an_invisible_bidi_or_zero_width_character(model, field, value, named):
    campaign = make_campaign()
    instance = {"campaign": campaign, "release": campaign.release, "artist": campaign.release.artist}[model]
    setattr(instance, field, value)

    with pytest.raises(ValidationError) as caught:
        instance.full_clean()

    assert named in caught.value.message_dict[field][0]


@pytest.mark.parametrize(
    "name",
    ["Nova \U0001f469\u200d\U0001f469\u200d\U0001f467", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"],
    ids=["emoji-sequence-zwj", "persian-zwnj"],
)
def test_a_name_keeps_the_joiners_emoji_and_scripts_need(name):
    artist = make_campaign().release.artist
    artist.name = name

    artist.full_clean()


def test_the_message_names_each_invisible_character_with_its_article():
    artist = make_campaign().release.artist
    artist.name = "Nova\u00adLa\u2062rk"

    with pytest.raises(ValidationError) as caught:
        artist.full_clean()

    assert caught.value.message_dict["name"] == [
        "The name can't hold a soft hyphen (U+00AD) or an invisible times (U+2062), invisible characters that change "
        "how the text reads; they may have been pasted with the text: type it again."
    ]
