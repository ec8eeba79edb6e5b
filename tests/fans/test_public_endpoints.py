"""Every public endpoint answers bad input with a clear 4xx, never a 500; security headers; rate limits."""

import datetime as dt
import html
import re
import time

import pytest
from django.core import signing
from django.test import RequestFactory
from django.urls import reverse
from django_ratelimit.core import get_usage

from fans import signups
from fans.geo import rate_limit_key
from fans.models import EmailSignup
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db
HUGE = "x" * 30_000


@pytest.fixture
def released(db):
    return make_campaign(slug="out-already", release_in=-dt.timedelta(days=1))


def public_gets(campaign, released) -> list[str]:
    return [
        "/",
        reverse("fans:campaign", args=[campaign.slug]),
        reverse("fans:campaign", args=[released.slug]),
        reverse("fans:thanks", args=[campaign.slug]),
        reverse("fans:listen", args=[released.slug, "spotify"]),
        reverse("fans:oauth_callback", args=["spotify"]),
        reverse("fans:revoke", args=["no-such-token"]),
        reverse("fans:privacy_notice"),
        reverse("fans:privacy", args=["bad"]),
        reverse("fans:privacy_export", args=["bad"]),
        reverse("fans:privacy_erase", args=["bad"]),
        reverse("fans:confirm_email", args=["bad"]),
        reverse("fans:health"),
    ]


def test_huge_and_odd_headers_never_make_a_500(client, campaign, released):
    headers = {
        "HTTP_USER_AGENT": HUGE,
        "HTTP_REFERER": "https://" + HUGE,
        "HTTP_ACCEPT_LANGUAGE": HUGE,
        "HTTP_CF_IPCOUNTRY": "<script>",
        "HTTP_DNT": HUGE,
        "HTTP_SEC_GPC": "\x00",
        "HTTP_COOKIE": "fv=" + "a" * 5000 + "; fans_platform=" + "\u00e9" * 100,
    }
    for url in public_gets(campaign, released):
        response = client.get(url, **headers)
        assert response.status_code < 500, url


@pytest.mark.parametrize(
    "query",
    [
        "?utm_source=%00%ff%fe",
        "?utm_source=a&utm_source=b&utm_medium=" + "%F0%9F%8E%B5" * 200,
        "?utm_campaign=%E0%A4%A",  # a broken percent escape
        "?" + "&".join(f"p{i}=v" for i in range(500)),
        "?state=" + HUGE[:5000] + "&code=" + HUGE[:5000],
    ],
)
def test_odd_query_strings_never_make_a_500(client, campaign, released, query):
    for url in public_gets(campaign, released):
        assert client.get(url + query).status_code < 500, url + query


@pytest.mark.parametrize(
    "path",
    ["/%00/", "/" + "a" * 500 + "/", "/%C3%BCn%C3%AFcode/", "/../etc/passwd", "/first-light/presave/", "/_x/", "/a b/"],
)
def test_bad_slugs_are_404s(client, campaign, path):
    assert client.get(path).status_code == 404


def test_posts_with_bad_input_are_4xx(client, campaign, released):
    assert client.post(reverse("fans:presave", args=[campaign.slug, "nope"])).status_code == 404
    assert client.post(reverse("fans:presave", args=["no-such", "spotify"])).status_code == 404
    assert client.post(reverse("fans:presave", args=[released.slug, "spotify"])).status_code == 410
    assert client.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": HUGE}).status_code == 400
    assert client.post(reverse("fans:email_signup", args=["no-such"]), {}).status_code == 404
    assert client.post(reverse("fans:revoke", args=["x" * 3000])).status_code == 404
    assert client.post(reverse("fans:privacy_erase", args=["x" * 3000])).status_code == 400
    assert client.post(reverse("fans:privacy_revoke", args=["bad", 1])).status_code == 400
    assert client.put(reverse("fans:campaign", args=[campaign.slug])).status_code == 405
    assert client.get(reverse("fans:email_signup", args=[campaign.slug])).status_code == 405
    assert client.post(reverse("fans:privacy_link"), {"email": HUGE}).status_code == 400
    assert client.get(reverse("fans:privacy_link")).status_code == 405


@pytest.mark.parametrize(
    ("url", "allow", "back", "words"),
    [
        ("/first-light/email/", "POST", "/first-light/", "Back to the pre-save page"),
        ("/first-light/presave/spotify/", "POST", "/first-light/", "Back to the pre-save page"),
        ("/privacy/link/", "POST", "/privacy/#privacy-link", "Ask for a link by email"),
        ("/privacy/some-token/stop-email/1/", "POST", "/privacy/some-token/", "Back to what we hold about you"),
        ("/oauth/apple_music/token/", "POST", None, None),
        ("/no-such-release/email/", "POST", None, None),
    ],
)
def test_opening_a_form_s_address_again_shows_a_clear_405_page(client, campaign, url, allow, back, words):
    """After an email sign-up the address bar shows /<slug>/email/#email-signup: a restored tab GETs it."""
    response = client.get(url)

    assert response.status_code == 405 and response["Allow"] == allow
    page = html.unescape(response.content.decode())
    assert "Nothing to show at this address" in page and "nothing was sent or saved again" in page
    if back:
        assert f'href="{back}">{words}</a>' in page
    else:
        assert "Back to the pre-save page" not in page


def test_another_wrong_method_gets_the_page_too_with_its_allow_header(client, campaign):
    response = client.put(reverse("fans:campaign", args=[campaign.slug]))

    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    page = html.unescape(response.content.decode())
    assert "This address doesn't answer a PUT request." in page
    assert 'href="/first-light/">Back to the pre-save page</a>' in page


def test_forms_need_a_csrf_token(campaign):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)

    assert strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"])).status_code == 403
    email = {"email": "fan@example.test", "consent": "1"}
    assert strict.post(reverse("fans:email_signup", args=[campaign.slug]), email).status_code == 403
    assert not EmailSignup.objects.exists()
    signup = EmailSignup.objects.create(campaign=campaign, email="fan@example.test", wording_version="v")
    confirm = reverse("fans:confirm_email", args=[signing.dumps({"signup": signup.pk}, salt=signups.CONFIRM_SALT)])
    assert strict.post(confirm).status_code == 403
    signup.refresh_from_db()
    assert signup.confirmed_at is None
    assert strict.post(reverse("fans:privacy_link"), {"email": "fan@example.test"}).status_code == 403


def test_the_page_sends_a_strict_content_security_policy_and_secure_headers(client, campaign):
    response = client.get(reverse("fans:campaign", args=[campaign.slug]))

    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    html = response.content.decode()
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))  # no inline scripts
    assert " style=" not in html and "<style" not in html  # no inline styles
    assert re.search(r" on[a-z]+=", html) is None  # no inline event handlers


def test_open_graph_and_twitter_cards_use_absolute_urls(client, campaign, settings, tmp_path):
    from django.core.files.base import ContentFile

    settings.MEDIA_ROOT = tmp_path
    settings.PUBLIC_BASE_URL = "https://presave.example"
    campaign.release.cover.save("cover.png", ContentFile(b"\x89PNG\r\n\x1a\n"), save=True)

    html = client.get(reverse("fans:campaign", args=[campaign.slug])).content.decode()

    assert '<meta property="og:title" content="Nova Lark — First Light">' in html
    assert '<meta property="og:url" content="https://presave.example/first-light/">' in html
    image = re.search(r'<meta property="og:image" content="([^"]+)">', html).group(1)
    assert image.startswith("https://presave.example/media/covers/")
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    assert f'<meta name="twitter:image" content="{image}">' in html


def usage(group: str, rate: str) -> dict:
    """The rate limit's count and time left for this client (the test client's address), as the view counts."""
    request = RequestFactory().post("/")
    return get_usage(request, group=group, key=rate_limit_key, rate=rate, method=["POST"], increment=False)


def in_a_fresh_window(group: str, rate: str, margin: float = 20.0) -> None:
    """Wait, if need be, until the rate limit's current window for this client has `margin` seconds left:
    django-ratelimit's windows are fixed, so requests made across a window's end are counted in two."""
    time_left = usage(group, rate)["time_left"]
    if time_left < margin:
        time.sleep(time_left + 1)


def test_writing_too_fast_gets_a_clear_429(client, campaign, settings):
    settings.FANS_WRITE_RATE = "2/m"
    url = reverse("fans:email_signup", args=[campaign.slug])
    in_a_fresh_window("fans.views.email_signup", "2/m")

    answers = [client.post(url, {"email": f"fan{i}@example.test", "consent": "1"}) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert usage("fans.views.email_signup", "2/m")["count"] == 3, "the window waited for is the one counted"
    assert 1 <= int(answers[2]["Retry-After"]) <= 60, "the rest of the minute"
    page = answers[2].content.decode()
    assert "Too many tries" in page and "Wait a minute, then try again" in page
    assert EmailSignup.objects.count() == 2


def test_forms_sent_without_a_token_too_fast_get_the_429_not_another_page(campaign, settings):
    from django.test import Client

    settings.FANS_WRITE_RATE = "2/m"
    in_a_fresh_window("fans.views.send_again", "2/m")
    strict = Client(enforce_csrf_checks=True)  # each answer is a fresh render of the page (fans.views.send_again)

    answers = [strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"])) for _ in range(3)]

    assert [a.status_code for a in answers] == [403, 403, 429]
    assert "One more tap" in answers[1].content.decode() and "Too many tries" in answers[2].content.decode()


def test_a_limit_per_hour_says_how_many_minutes_to_wait(client, campaign, settings):
    """The 429 page and its Retry-After tell the time left in the window that was used up, not a fixed minute:
    a fan (or a client honouring Retry-After) who came back after a minute would only be refused again."""
    settings.FANS_WRITE_RATE = "1/2h"
    url = reverse("fans:email_signup", args=[campaign.slug])

    client.post(url, {"email": "fan@example.test", "consent": "1"})
    refused = client.post(url, {"email": "fan2@example.test", "consent": "1"})

    assert refused.status_code == 429
    seconds = int(refused["Retry-After"])
    assert 60 < seconds <= 7200
    minutes = -(-seconds // 60)
    expected = f"Wait {minutes} minutes" if minutes < 120 else "Wait 2 hours"
    assert f"{expected}, then try again" in refused.content.decode()
    assert EmailSignup.objects.count() == 1


def test_behind_a_proxy_the_limit_counts_the_clients_address_and_an_odd_header_is_no_500(client, campaign, settings):
    """RATELIMIT_IP_META_KEY names the proxy's header; a request without it, or with something else than one
    address in it (a probe that bypassed the proxy), must still be answered, and is counted all the same."""
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"
    settings.FANS_WRITE_RATE = "2/m"
    url = reverse("fans:email_signup", args=[campaign.slug])

    def post(i: int, **headers) -> int:
        return client.post(url, {"email": f"fan{i}@example.test", "consent": "1"}, **headers).status_code

    assert [post(i, HTTP_X_REAL_IP="203.0.113.7") for i in range(3)] == [200, 200, 429]
    assert post(3, HTTP_X_REAL_IP="203.0.113.8") == 200, "another client has its own count"
    assert [post(4), post(5, HTTP_X_REAL_IP="garbage"), post(6, HTTP_X_REAL_IP="1.2.3.4, 5.6.7.8")] == [200, 200, 429]
    v6 = [post(7 + i, HTTP_X_REAL_IP=f"2001:db8:1:2::{i + 1}") for i in range(3)]
    assert v6 == [200, 200, 429], "one IPv6 /64 is one subscriber"


def test_health_is_plain_ok(client, db):
    response = client.get(reverse("fans:health"))

    assert (response.status_code, response.content) == (200, b"ok")
