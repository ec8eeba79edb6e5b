"""Fans arriving in Instagram's, TikTok's… browsers: told why, offered their own browser, and an email instead."""

import html
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.urls import reverse

from fans import consent, inapp
from fans.models import EmailSignup, FunnelEvent
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db

UAS = {
    "instagram": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Instagram 339.0.3.12.91 (iPhone14,5; iOS 17_5; en_GB; en; scale=3.00; 1170x2532; 615179009)",
    "facebook": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBBV/588000000;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS]",
    "tiktok": "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36 trill_320404 JsSdk/1.0 NetType/WIFI "
    "Channel/googleplay AppName/musical_ly app_version/32.4.4 ByteLocale/en BytedanceWebview/d8a21c6",
    "snapchat": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Snapchat/12.70.0.35 (like Safari/8617.2.4.10.8, panda)",
    "twitter": "Mozilla/5.0 (Linux; Android 14; Pixel 7; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/122.0.6261.64 Mobile Safari/537.36 TwitterAndroid",
    "linkedin": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [LinkedInApp]/9.29.6413",
    "pinterest": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [Pinterest/iOS]",
    "line": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Safari Line/13.20.0",
    "wechat": "Mozilla/5.0 (Linux; Android 12; M2102J20SG; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/86.0.4240.99 XWEB/4317 MMWEBSDK/20220903 Mobile Safari/537.36 MMWEBID/1234 MicroMessenger/8.0.28",
}
ORDINARY = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "",
]


@pytest.mark.parametrize(("key", "user_agent"), UAS.items())
def test_each_app_is_recognised(key, user_agent):
    found = inapp.detect(user_agent)

    assert found is not None and found.key == key
    assert found.os == ("android" if "Android" in user_agent else "ios")


@pytest.mark.parametrize("user_agent", ORDINARY)
def test_ordinary_browsers_are_not_in_app(user_agent):
    assert inapp.detect(user_agent) is None


def test_an_unknown_apps_android_webview_is_still_caught():
    found = inapp.detect("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 Chrome/131 Mobile")

    assert found is not None and found.key == "webview"


def as_android_reads(intent: str) -> tuple[str, str]:
    """The URL an intent:// link opens and its fallback URL, read as Android's Intent.parseUri does: the data
    is what comes before the last "#" with the scheme put back; an extra's value is URL-decoded."""
    data, _, fragment = intent.rpartition("#")
    assert data.startswith("intent://") and fragment.startswith("Intent;") and fragment.endswith(";end")
    fields = dict(item.split("=", 1) for item in fragment.removeprefix("Intent;").removesuffix(";end").split(";"))
    return f"{fields['scheme']}:{data.removeprefix('intent:')}", unquote(fields["S.browser_fallback_url"])


def test_android_intent_link_opens_the_same_page_in_the_default_browser():
    url = inapp.android_intent_url("https://presave.example/first-light/?utm_source=ig")

    assert url == (
        "intent://presave.example/first-light/?utm_source=ig#Intent;scheme=https;action=android.intent.action.VIEW;"
        "S.browser_fallback_url=https%3A%2F%2Fpresave.example%2Ffirst-light%2F%3Futm_source%3Dig;end"
    )
    assert as_android_reads(url) == ("https://presave.example/first-light/?utm_source=ig",) * 2


def test_android_intent_link_carries_the_query_url_encoded_in_the_url_and_its_fallback():
    url = inapp.android_intent_url(
        "https://presave.example/first-light/", {"utm_source": "tt", "utm_campaign": "drop #1; a=b & c"}
    )

    opened, fallback = as_android_reads(url)
    assert (
        opened == fallback == "https://presave.example/first-light/?utm_campaign=drop+%231%3B+a%3Db+%26+c&utm_source=tt"
    )


def page(client, campaign, user_agent):
    return client.get(reverse("fans:campaign", args=[campaign.slug]), HTTP_USER_AGENT=user_agent)


def test_instagram_on_android_gets_an_open_in_browser_link_and_the_email_fallback(client, campaign, settings):
    settings.PUBLIC_BASE_URL = "https://presave.example"
    android_instagram = (
        UAS["tiktok"]
        .replace("trill_320404", "")
        .replace("musical_ly", "")
        .replace("ByteLocale", "")
        .replace("BytedanceWebview", "Instagram")
    )

    html = page(client, campaign, android_instagram).content.decode()

    assert "You're in Instagram's browser" in html
    assert 'href="intent://presave.example/first-light/#Intent;scheme=https;' in html
    assert "Open in your browser" in html
    assert "Pre-save on Spotify" in html  # still offered: a plain form POST and a full-page redirect
    assert 'action="/first-light/email/#email-signup"' in html
    assert "target=" not in html and "window.open" not in html  # no pop-ups
    assert "{#" not in html and "#}" not in html, "a template comment shown to the fan as text"


def intent_link_in(response) -> str:
    return html.unescape(re.search(r'id="open-in-browser" href="([^"]*)"', response.content.decode()).group(1))


def test_tiktoks_open_in_browser_link_keeps_the_visits_cleaned_utm_values(
    client, campaign, settings, django_assert_max_num_queries
):
    """The page is cached per variant: each visit's link carries its own UTM values, cleaned as fans.tracking
    stores them, and nothing else from the query string; a warm view still makes at most one query."""
    settings.PUBLIC_BASE_URL = "https://presave.example"
    url = reverse("fans:campaign", args=[campaign.slug])
    query = "?utm_source=TT&utm_medium=%20Social%20&utm_campaign=%22%3E%3Cscript%3Edrop%20%231&fbclid=x&next=/evil"

    first = client.get(url + query, HTTP_USER_AGENT=UAS["tiktok"])
    with django_assert_max_num_queries(1):
        other = client.get(url + "?utm_source=ig_story", HTTP_USER_AGENT=UAS["tiktok"])
    plain = client.get(url, HTTP_USER_AGENT=UAS["tiktok"])

    opened, fallback = as_android_reads(intent_link_in(first))
    assert opened == fallback
    parts = urlsplit(opened)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "presave.example", "/first-light/")
    assert parse_qs(parts.query) == {"utm_source": ["tt"], "utm_medium": ["social"], "utm_campaign": ["scriptdrop #1"]}
    assert "<script>" not in first.content.decode()
    assert as_android_reads(intent_link_in(other))[0] == "https://presave.example/first-light/?utm_source=ig_story"
    assert as_android_reads(intent_link_in(plain)) == ("https://presave.example/first-light/",) * 2


def test_tiktok_on_iphone_gets_steps_instead_of_a_link(client, campaign):
    iphone_tiktok = UAS["instagram"].replace("Instagram", "musical_ly_33.0")

    html = page(client, campaign, iphone_tiktok).content.decode()

    assert "You're in TikTok's browser" in html
    assert "intent://" not in html
    assert "Open in browser" in html and 'id="open-in-browser-steps"' in html


@pytest.mark.parametrize("user_agent", ORDINARY)
def test_an_ordinary_browser_sees_no_notice_and_the_email_form_below_the_buttons(client, campaign, user_agent):
    """A fan who listens on a service we can't pre-save on (YouTube Music, Amazon, Tidal) can still be told."""
    html = page(client, campaign, user_agent).content.decode().replace("&#x27;", "'")

    assert "browser</h2>" not in html
    assert html.index("What you allow") < html.index('action="/first-light/email/#email-signup"')
    assert '<h2 id="email-heading">Not on these? Get an email when it\'s out</h2>' in html
    assert 'name="csrfmiddlewaretoken"' not in html, "the cached page holds no token: js/form-token.js fetches one"


def test_without_the_email_opt_in_an_ordinary_browser_gets_no_email_form(client):
    campaign = make_campaign(offer_email_optin=False)

    html = page(client, campaign, ORDINARY[0]).content.decode()

    assert "Pre-save on Spotify" in html and "/email/" not in html


def test_the_in_app_email_fallback_keeps_its_own_heading(client, campaign):
    html = page(client, campaign, UAS["instagram"]).content.decode().replace("&#x27;", "'")

    assert '<h2 id="email-heading">Email me when it\'s out</h2>' in html


def test_the_email_fallback_serves_when_no_service_is_offered(client):
    campaign = make_campaign(services=["no-such-service"])

    html = page(client, campaign, ORDINARY[0]).content.decode()

    assert "Pre-save on" not in html
    assert "Email me when it's out" in html


def test_the_email_fallback_needs_explicit_consent(client, campaign):
    response = client.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": "fan@example.test"})

    assert response.status_code == 400
    assert "Tick the box to agree" in response.content.decode()
    assert not EmailSignup.objects.exists()


def test_a_bad_email_address_is_a_clear_400(client, campaign):
    response = client.post(
        reverse("fans:email_signup", args=[campaign.slug]), {"email": "not an address", "consent": "1"}
    )

    assert response.status_code == 400
    assert "Enter a valid email address" in response.content.decode()


def test_signing_up_records_the_email_the_wording_and_the_funnel_step(client, campaign):
    response = client.post(
        reverse("fans:email_signup", args=[campaign.slug]),
        {"email": " Fan@Example.test ", "consent": "1", "utm_source": "tiktok"},
        HTTP_CF_IPCOUNTRY="DE",
        HTTP_USER_AGENT=UAS["tiktok"],
    )

    assert response.status_code == 200
    assert "Check your inbox." in response.content.decode()
    signup = EmailSignup.objects.get()
    assert (signup.campaign, signup.email, signup.country) == (campaign, "fan@example.test", "DE")
    assert signup.wording_version == consent.WORDING_VERSION
    event = FunnelEvent.objects.get()
    assert (event.kind, event.utm_source, event.in_app_browser) == ("email_optin", "tiktok", "tiktok")


def test_signing_up_twice_keeps_one_row(client, campaign):
    for _ in range(2):
        client.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": "fan@example.test", "consent": "1"})

    assert EmailSignup.objects.count() == 1


def test_no_email_sign_up_when_the_campaign_does_not_offer_emails(client):
    campaign = make_campaign(offer_email_optin=False)

    response = client.post(
        reverse("fans:email_signup", args=[campaign.slug]), {"email": "fan@example.test", "consent": "1"}
    )

    assert response.status_code == 410
    assert not EmailSignup.objects.exists()


def test_no_template_has_a_comment_django_would_print():
    """`{# … #}` is a comment on one line only: spread over several, Django prints it as page text (the email
    form's once showed its notes to every fan in an in-app browser). Longer notes use {% comment %}."""
    import re

    from django.conf import settings

    printed = [
        f"{path.relative_to(settings.BASE_DIR)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in (settings.BASE_DIR / "templates").rglob("*.html")
        for text in [path.read_text()]
        for match in re.finditer(r"\{#(.*?)#\}", text, re.DOTALL)
        if "\n" in match.group(1)
    ]

    assert printed == []


def test_apple_music_has_no_button_in_an_in_app_browser_only_the_open_in_your_browser_advice(client, sandbox):
    campaign = make_campaign(services=["spotify", "apple_music"])

    in_app = html.unescape(page(client, campaign, UAS["instagram"]).content.decode())
    ordinary = html.unescape(page(client, campaign, ORDINARY[0]).content.decode())

    assert "Pre-save on Spotify" in in_app and "Pre-save on Apple Music" not in in_app
    assert "To pre-save on Apple Music, open this page in your browser" in in_app
    assert "Pre-save on Apple Music" in ordinary and "To pre-save on Apple Music" not in ordinary


@pytest.mark.parametrize("app", ["instagram", "tiktok"])
def test_a_hand_made_apple_music_presave_from_an_in_app_browser_is_refused_with_the_open_in_browser_help(
    client, sandbox, settings, app
):
    """The page shows no Apple Music button there (its sign-in can't work); a POST made by hand gets the same
    advice as a 4xx, starts no sign-in and counts no click."""
    settings.PUBLIC_BASE_URL = "https://presave.example"
    campaign = make_campaign(services=["spotify", "apple_music"])
    start = reverse("fans:presave", args=[campaign.slug, "apple_music"])

    response = client.post(start, HTTP_USER_AGENT=UAS[app])

    page = html.unescape(response.content.decode())
    assert response.status_code == 403 and "Location" not in response
    assert "Open this page in your browser" in page
    assert f"Apple Music sign-in can't work inside {inapp.LABELS[app]}" in page
    if app == "tiktok":  # Android: a link that opens the pre-save page in the phone's browser
        assert 'href="intent://presave.example/first-light/#Intent;scheme=https;' in page
    else:  # iPhone: the steps
        assert 'id="open-in-browser-steps"' in page and "intent://" not in page
    assert f'href="{campaign.get_absolute_url()}"' in page
    assert "fans.pending_authorizations" not in client.session
    assert not FunnelEvent.objects.filter(kind=FunnelEvent.Kind.CLICK).exists()


def test_the_refused_apple_music_presaves_open_in_browser_link_keeps_the_visits_cleaned_utm_values(
    client, sandbox, settings
):
    """The campaign page's form posts the visit's UTM values as hidden fields: the problem page's Android link
    carries them, cleaned as the campaign page's own link has them, and nothing else the form posted."""
    settings.PUBLIC_BASE_URL = "https://presave.example"
    campaign = make_campaign(services=["spotify", "apple_music"])
    start = reverse("fans:presave", args=[campaign.slug, "apple_music"])
    posted = {
        "utm_source": "TT",
        "utm_medium": " Social ",
        "utm_campaign": '"><script>drop #1',
        "utm_term": "x",
        "email_opt_in": "1",
        "next": "/evil",
    }

    response = client.post(start, posted, HTTP_USER_AGENT=UAS["tiktok"])
    plain = client.post(start, HTTP_USER_AGENT=UAS["tiktok"])

    assert response.status_code == 403
    opened, fallback = as_android_reads(intent_link_in(response))
    assert opened == fallback
    parts = urlsplit(opened)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "presave.example", "/first-light/")
    assert parse_qs(parts.query) == {"utm_source": ["tt"], "utm_medium": ["social"], "utm_campaign": ["scriptdrop #1"]}
    assert "<script>" not in response.content.decode()
    assert as_android_reads(intent_link_in(plain)) == ("https://presave.example/first-light/",) * 2


def back_link_in(response) -> str:
    """The problem page's "Back to the pre-save page" link, as the HTML has it (escaped)."""
    link = re.search(r'<a class="button [^"]*" href="([^"]*)">Back to the pre-save page</a>', response.content.decode())
    return link[1]


@pytest.mark.parametrize("app", ["tiktok", "instagram"])
def test_the_refused_apple_music_presaves_back_link_keeps_the_visits_cleaned_utm_values(client, sandbox, app):
    """The link back to the pre-save page keeps the UTM values the campaign page's form posted, as the Android
    link does: cleaned, the allowed keys only, URL-encoded and HTML-escaped; without any, the plain page."""
    campaign = make_campaign(services=["spotify", "apple_music"])
    start = reverse("fans:presave", args=[campaign.slug, "apple_music"])
    posted = {
        "utm_source": "TT",
        "utm_medium": " Social ",
        "utm_campaign": '"><script>drop #1&x=y',
        "utm_term": "x",
        "email_opt_in": "1",
        "next": "/evil",
    }

    response = client.post(start, posted, HTTP_USER_AGENT=UAS[app])
    plain = client.post(start, HTTP_USER_AGENT=UAS[app])

    assert response.status_code == plain.status_code == 403
    href = back_link_in(response)
    assert href == "/first-light/?utm_campaign=scriptdrop+%231%26x%3Dy&amp;utm_medium=social&amp;utm_source=tt"
    parts = urlsplit(html.unescape(href))
    assert parts.path == campaign.get_absolute_url()
    assert parse_qs(parts.query) == {
        "utm_source": ["tt"],
        "utm_medium": ["social"],
        "utm_campaign": ["scriptdrop #1&x=y"],
    }
    assert "<script>" not in response.content.decode()
    assert back_link_in(plain) == campaign.get_absolute_url()


def test_apple_music_still_starts_from_an_ordinary_browser_and_spotify_from_an_in_app_one(client, sandbox):
    campaign = make_campaign(services=["spotify", "apple_music"])

    apple = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]), HTTP_USER_AGENT=ORDINARY[0])
    spotify = client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), HTTP_USER_AGENT=UAS["instagram"])

    assert (apple.status_code, spotify.status_code) == (302, 302)
