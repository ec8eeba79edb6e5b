"""The OAuth round trip: our presave URL → the sandbox's login page over HTTP → our callback.

The fan's browser is the Django test client (one session) for our side and `requests` for the sandbox's
login page, whose form we fill in as a fan would.
"""

import datetime as dt
import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from delivery import engine
from delivery.sandbox.state import base62_id
from delivery.services import get_service
from fans import consent
from fans.authorization import THANKS_KEY
from fans.geo import client_ip
from fans.models import ConsentRecord, Credential, EmailSignup, Fan, Subscription, hash_token
from releases.models import Campaign
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db
CALLBACK = reverse("fans:oauth_callback", args=["spotify"])


class LoginForm(HTMLParser):
    """The sandbox login page's form: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action", "")
        elif tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs["name"]] = attrs.get("value", "")


def start_presave(client, campaign, *, email_opt_in: bool = False) -> str:
    """Press "Pre-save on Spotify" on the campaign page; returns the sandbox authorize URL."""
    response = client.post(
        reverse("fans:presave", args=[campaign.slug, "spotify"]), {"email_opt_in": "1"} if email_opt_in else {}
    )
    assert response.status_code == 302, response.content
    return response["Location"]


def sandbox_login(authorize_url: str, *, user: str = "alice", decision: str = "agree") -> dict[str, str]:
    """Log in on the sandbox's page as `user` and press Agree (or Cancel); returns the callback's query."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    form = LoginForm()
    form.feed(page.text)
    answer = requests.post(
        urljoin(authorize_url, form.action),
        data={**form.hidden, "user": user, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert location.path == CALLBACK
    return dict(parse_qsl(location.query))


def presave(client, campaign, **kwargs) -> tuple[dict[str, str], object]:
    """The whole round trip; returns the callback query and our callback's response."""
    query = sandbox_login(start_presave(client, campaign, email_opt_in=kwargs.pop("email_opt_in", False)), **kwargs)
    return query, client.get(CALLBACK, query, HTTP_USER_AGENT="Mozilla/5.0 (test fan)")


def no_rows() -> bool:
    return not (
        Fan.objects.exists()
        or Subscription.objects.exists()
        or Credential.objects.exists()
        or ConsentRecord.objects.exists()
    )


def test_presave_records_fan_subscription_sealed_token_and_consent(client, campaign, sandbox):
    query, response = presave(client, campaign, email_opt_in=True)

    assert response.status_code == 302
    assert response["Location"] == reverse("fans:thanks", args=[campaign.slug])
    fan = Fan.objects.get()
    assert fan.service == "spotify"
    assert fan.service_user_id == base62_id("account:alice")  # the stable account id, not the username
    assert fan.display_name == "Alice"
    assert fan.email == "alice@sandbox.test"
    subscription = Subscription.objects.get()
    assert (subscription.fan, subscription.campaign, subscription.status) == (fan, campaign, "pending")
    credential = Credential.objects.get(subscription=subscription)
    assert credential.reveal().startswith("AQ")
    assert timezone.now() - credential.authorized_at < dt.timedelta(minutes=1)
    record = ConsentRecord.objects.get()
    assert record.subscription == subscription
    assert record.campaign == campaign
    assert record.service_user_id == fan.service_user_id
    assert record.email == "alice@sandbox.test"
    assert record.email_opt_in is True
    assert record.ip_address == "127.0.0.1"
    assert record.user_agent == "Mozilla/5.0 (test fan)"
    assert record.scopes == ["user-library-modify", "user-read-email"]
    assert record.wording_version == consent.WORDING_VERSION
    assert record.revoked_at is None

    thanks = client.get(response["Location"])
    html = thanks.content.decode()
    assert thanks.status_code == 200
    assert "You're in." in html.replace("&#x27;", "'")
    revoke_path = html.split('class="revoke-link" href="')[1].split('"')[0]
    token = revoke_path.rstrip("/").rsplit("/", 1)[1]
    assert hash_token(token) == record.revoke_token_hash
    with connection.cursor() as cursor:  # what a copy of the session table would hand out
        cursor.execute("SELECT session_data FROM django_session")
        (stored,) = cursor.fetchone()
    assert token not in client.session.load() and token not in str(dict(client.session)) and token not in stored


def test_a_session_from_before_the_sealing_still_shows_its_cancel_link(client, campaign, sandbox):
    """Sessions made before revoke tokens were sealed keep theirs as they were given, for two weeks at most."""
    _, response = presave(client, campaign)
    token = ConsentRecord.objects.get().issue_revoke_token()
    ConsentRecord.objects.update(revoke_token_hash=hash_token(token))
    session = client.session
    session[THANKS_KEY] = {campaign.slug: {"service": "spotify", "revoke_token": token}}
    session.save()

    html = client.get(response["Location"]).content.decode()

    assert reverse("fans:revoke", args=[token]) in html


def test_behind_a_proxy_the_consent_records_the_client_s_address(client, campaign, sandbox, settings):
    """The proxy's header the rate limits count (RATELIMIT_IP_META_KEY) is the fan's address, not the proxy's."""
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"
    client.defaults.update(HTTP_X_REAL_IP="203.0.113.9", REMOTE_ADDR="10.0.0.2")

    _, response = presave(client, campaign)

    assert response.status_code == 302
    assert ConsentRecord.objects.get().ip_address == "203.0.113.9"


def test_a_proxy_header_holding_no_address_records_none(rf, settings):
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"
    assert client_ip(rf.get("/", HTTP_X_REAL_IP="not an address")) is None
    assert client_ip(rf.get("/", HTTP_X_REAL_IP=" 2001:db8::1 ")) == "2001:db8::1"


def test_stored_token_can_be_refreshed_on_release_day(client, campaign, sandbox):
    presave(client, campaign)

    spotify = get_service("spotify")
    tokens = spotify.parse_tokens(spotify.run(spotify.refresh_call(Credential.objects.get().reveal())))

    assert tokens.access_token
    assert "user-library-modify" in tokens.scope.split()


def test_without_the_email_box_the_email_is_neither_asked_for_nor_kept(client, campaign, sandbox):
    authorize_url = start_presave(client, campaign)
    assert "user-read-email" not in dict(parse_qsl(urlsplit(authorize_url).query))["scope"]

    client.get(CALLBACK, sandbox_login(authorize_url))

    assert Fan.objects.get().email == ""
    record = ConsentRecord.objects.get()
    assert (record.email, record.email_opt_in, record.scopes) == ("", False, ["user-library-modify"])


def test_following_campaign_asks_for_the_follow_scope(client, sandbox):
    campaign = make_campaign(follow_artist=True)

    presave(client, campaign)

    assert ConsentRecord.objects.get().scopes == ["user-library-modify", "user-follow-modify"]


def test_presaving_twice_keeps_one_subscription_and_two_consent_records(client, campaign, sandbox):
    presave(client, campaign)
    first_token = Credential.objects.get().reveal()

    _, response = presave(client, campaign)

    assert response.status_code == 302
    assert Fan.objects.count() == 1
    assert Subscription.objects.count() == 1
    assert ConsentRecord.objects.count() == 2
    assert Credential.objects.get().reveal() != first_token  # replaced by the newer authorization


def test_pre_saving_again_without_the_email_box_takes_the_earlier_yes_back(client, campaign, sandbox):
    """The fan's latest answer counts: no export, no release-day email, no address kept."""
    presave(client, campaign, email_opt_in=True)
    assert Fan.objects.get().email == "alice@sandbox.test"

    presave(client, campaign, email_opt_in=False)

    assert not ConsentRecord.objects.sharing_email().exists()
    assert Fan.objects.get().email == ""


def test_presaving_again_after_revoking_makes_the_subscription_pending_again(client, campaign, sandbox):
    presave(client, campaign)
    Subscription.objects.update(status="revoked", attempts=3, last_error="revoked by fan", done_calls="save")

    presave(client, campaign)

    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.attempts, subscription.last_error) == ("pending", 0, "")
    assert subscription.done_calls == "", "a new authorization is a new promise: every action is done anew"


def test_a_fan_spotifys_development_mode_does_not_let_in_is_told_why_and_offered_the_email(client, campaign, sandbox):
    """A label without Spotify's extended quota: its app serves only the accounts listed in its dashboard. The
    sign-in works, then every API call answers 403: the fan is told why, nothing is saved, and the page offers
    "email me when it's out", which works from there."""
    sandbox.faults(registered_users=["bob"])

    _, response = presave(client, campaign, user="alice")

    assert response.status_code == 403
    html = response.content.decode().replace("&#x27;", "'")
    assert "This pre-save can't use your account yet" in html
    assert "test mode, which lets in only a few listed accounts" in html
    assert no_rows()
    signup = reverse("fans:email_signup", args=[campaign.slug])
    assert f'action="{signup}#email-signup"' in html and 'name="csrfmiddlewaretoken"' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    answer = client.post(signup, {"email": "alice@fan.test", "consent": "1", "csrfmiddlewaretoken": token})
    assert answer.status_code == 200
    assert EmailSignup.objects.get().email == "alice@fan.test"

    _, listed = presave(client, campaign, user="bob")
    assert listed.status_code == 302, "a listed account pre-saves as usual"


def test_without_the_email_opt_in_the_development_mode_page_promises_no_email(client, sandbox):
    campaign = make_campaign(offer_email_optin=False)
    sandbox.faults(registered_users=["bob"])

    _, response = presave(client, campaign, user="alice")

    html = response.content.decode().replace("&#x27;", "'")
    assert response.status_code == 403 and "yours isn't one of them, so nothing was saved." in html
    assert "get an email" not in html and 'id="email-signup"' not in html


def test_a_sign_in_while_spotify_refuses_the_label_app_offers_the_email_and_blames_nobody(client, campaign, sandbox):
    """The app owner's Premium lapsed (Spotify's development mode): every Web API call answers a plain-text 403
    for hours. The fan is not told "in a moment", nothing is kept, and the email is offered instead."""
    sandbox.faults(owner_premium_lapsed=True)

    _, response = presave(client, campaign, user="alice")

    assert response.status_code == 502
    html = response.content.decode().replace("&#x27;", "'")
    assert "isn't letting fans sign in to this pre-save right now" in html and "in a moment" not in html
    assert "get an email when it's out" in html and 'id="email-signup"' in html
    assert no_rows()


def test_two_pending_presaves_in_one_session_both_complete(client, campaign, sandbox):
    other = make_campaign(slug="second-light")
    first_url = start_presave(client, campaign)
    second_url = start_presave(client, other)

    assert client.get(CALLBACK, sandbox_login(second_url)).status_code == 302
    assert client.get(CALLBACK, sandbox_login(first_url)).status_code == 302

    assert set(Subscription.objects.values_list("campaign__slug", flat=True)) == {campaign.slug, other.slug}


def test_cancel_on_spotify_is_403_and_saves_nothing(client, campaign, sandbox):
    query, response = presave(client, campaign, decision="cancel")

    assert query["error"] == "access_denied"
    assert response.status_code == 403
    html = response.content.decode().replace("&#x27;", "'")
    assert "You didn't give permission" in html
    assert campaign.get_absolute_url() in html  # a way back
    assert no_rows()


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        ("server_error", "Spotify authorization failed: server_error"),
        ("x\n2026-11-28 02:00:00 CRITICAL django: forged", "Spotify authorization failed: unrecognised error"),
        ("x\r\nforged", "Spotify authorization failed: unrecognised error"),
        ("server_error\n", "Spotify authorization failed: unrecognised error"),
    ],
    ids=["oauth-code", "newline", "crlf", "code-then-newline"],
)
def test_the_callback_s_error_is_logged_only_as_an_oauth_code(client, campaign, sandbox, caplog, error, logged):
    """Anyone can put anything in the callback's query: a newline in `error` must not forge a log line."""
    state = dict(parse_qsl(urlsplit(start_presave(client, campaign)).query))["state"]

    response = client.get(CALLBACK, {"state": state, "error": error})

    assert response.status_code >= 400
    lines = [r.getMessage() for r in caplog.records if r.name == "fans.authorization"]
    assert lines == [logged]
    assert "forged" not in caplog.text
    assert no_rows()


@pytest.mark.parametrize(
    "state",
    [None, "", "not-a-state-we-issued"],
    ids=["missing", "empty", "unknown"],
)
def test_callback_without_our_state_is_400_and_saves_nothing(client, campaign, sandbox, state):
    query = sandbox_login(start_presave(client, campaign))
    if state is None:
        del query["state"]
    else:
        query["state"] = state

    response = client.get(CALLBACK, query)

    assert response.status_code == 400
    assert "This sign-in can't be finished" in html.unescape(response.content.decode()), "a title for every case"
    assert no_rows()


def test_callback_in_another_browser_is_400(client, campaign, sandbox, django_user_model):
    from django.test import Client

    query = sandbox_login(start_presave(client, campaign))

    response = Client().get(CALLBACK, query)

    assert response.status_code == 400
    assert no_rows()


def test_the_callback_opened_again_shows_the_thank_you_page_and_keeps_one_subscription(client, campaign, sandbox):
    """A reload or the back button after a pre-save: the fan is not told to start again."""
    query, first = presave(client, campaign)
    assert first.status_code == 302

    replay = client.get(CALLBACK, query)

    assert (replay.status_code, replay["Location"]) == (302, first["Location"])
    assert client.get(replay["Location"]).status_code == 200
    assert Subscription.objects.count() == 1
    assert ConsentRecord.objects.count() == 1
    assert sandbox.control("GET", "counters")["token_requests"] == 1, "the code was not sent again"


def test_the_thank_you_page_opened_after_release_says_its_out_with_a_link_to_listen(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)
    before = html.unescape(client.get(done["Location"]).content.decode())
    assert "comes out on" in before

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        page = html.unescape(client.get(done["Location"]).content.decode())

    assert "is out now" in page
    assert "comes out on" not in page and "we'll:" not in page
    assert f'class="listen-now" href="{reverse("fans:listen", args=[campaign.slug, "spotify"])}">Listen now' in page


def test_the_thank_you_page_offers_the_cancel_link_while_the_pre_save_is_pending_not_by_the_clock(client, sandbox):
    """The revoke link cancels a pending pre-save past the release time too: the page offers it while the pre-save
    is pending, saying what is being done (pages.under_way), not "Until release day"; once it's done, no more."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)
    before = " ".join(html.unescape(client.get(done["Location"]).content.decode()).split())
    assert "Until it's done, this link cancels" in before and 'class="revoke-link"' in before

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        page = " ".join(html.unescape(client.get(done["Location"]).content.decode()).split())
        link = re.search(r'class="revoke-link" href="([^"]+)"', page).group(1)
        asked = html.unescape(client.get(link).content.decode())
        engine.deliver_campaign(campaign.pk, fan_out=False)
        assert Subscription.objects.get().status == "delivered"
        after = " ".join(html.unescape(client.get(done["Location"]).content.decode()).split())

    assert "Until it's done, this link cancels the pre-save" in page and "release day" not in page
    assert (
        "Your pre-save is being done now. Once it's done, you can undo it in Spotify: remove First Light from your "
        "Spotify library." in page
    )
    assert 'id="confirm-revoke"' in asked and "Your pre-save on Spotify is being done now." in asked
    assert 'class="revoke-link"' not in after and "Cancel this pre-save" not in after
    assert "It's out, so there's no pre-save left to cancel: what you allowed is done" in after
    assert "remove First Light from your Spotify library" in after  # undone in the service, not here
    privacy_url = html.unescape(re.search(r'class="privacy-link" href="([^"]+)"', after).group(1))
    assert client.get(privacy_url).status_code == 200


def thanks_after_release(client, sandbox, status: str, **fields) -> str:
    """The thank-you page two hours after the release instant, the fan's pre-save in `status` by then."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1), follow_artist=True)
    _, done = presave(client, campaign)
    Subscription.objects.update(status=status, **fields)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        return " ".join(html.unescape(client.get(done["Location"]).content.decode()).split())


def test_after_release_a_presave_still_being_delivered_says_it_is_being_done(client, sandbox):
    page = thanks_after_release(client, sandbox, Subscription.Status.PENDING)

    assert "is out now, and your pre-save on Spotify is being done now." in page
    assert "has done what you allowed" not in page
    assert "You're in." in page and 'class="listen-now"' in page


def test_after_release_a_delivered_presave_says_it_is_done(client, sandbox):
    page = thanks_after_release(
        client, sandbox, Subscription.Status.DELIVERED, done_calls="save follow", delivered_at=timezone.now()
    )

    assert "is out now, and your pre-save on Spotify has done what you allowed" in page
    assert "being done" not in page and "couldn't" not in page
    assert "you can undo it in Spotify: remove First Light from your Spotify library and unfollow Nova Lark" in page


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (Subscription.Status.FAILED, ""),
        (Subscription.Status.REVOKED, ": the permission you gave us was withdrawn in your Spotify account"),
    ],
)
def test_after_release_a_presave_that_could_not_be_done_says_so_and_what_to_do(client, sandbox, status, why):
    page = thanks_after_release(client, sandbox, status, last_error="Gave up after 5 attempts: 503")

    assert f"is out now, but release day couldn't do what you allowed on Spotify{why}." in page
    assert "has done what you allowed" not in page and "being done" not in page
    assert "You're in." not in page and "Your pre-save couldn't be done." in page
    assert (
        '<a class="listen-now" href="/first-light/">Open its page</a> to listen, and save it or follow Nova Lark '
        "there yourself." in page
    )
    assert "503" not in page, "the fan reads what to do, not our error"
    assert "you can undo it" not in page, "nothing was done to undo"


def test_after_release_a_partly_done_presave_tells_how_to_undo_only_what_was_done(client, sandbox):
    page = thanks_after_release(client, sandbox, Subscription.Status.FAILED, done_calls="save")

    assert "release day couldn't do what you allowed on Spotify" in page
    assert "What was done stays: to undo it, remove First Light from your Spotify library." in page
    assert "unfollow" not in page


def test_a_replayed_callback_in_another_browser_is_400(client, campaign, sandbox):
    from django.test import Client

    query, first = presave(client, campaign)

    assert Client().get(CALLBACK, query).status_code == 400
    assert Subscription.objects.count() == 1


def test_a_callback_to_the_wrong_service_uses_nothing_up(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))

    stray = client.get(reverse("fans:oauth_callback", args=["deezer"]), query)
    right = client.get(CALLBACK, query)

    assert stray.status_code in (400, 404) and right.status_code == 302
    assert Subscription.objects.count() == 1


def test_a_nul_in_the_user_agent_is_dropped_not_a_500(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))

    response = client.get(CALLBACK, query, HTTP_USER_AGENT="Mozilla\x00evil")

    assert response.status_code == 302
    assert ConsentRecord.objects.get().user_agent == "Mozillaevil"


def test_a_nul_in_the_service_s_display_name_is_dropped_not_a_500(client, campaign, sandbox):
    sandbox.control("POST", "users", {"id": "dana", "display_name": "Dana\x00Fox", "country": "GB"})

    query, response = presave(client, campaign, user="dana")

    assert response.status_code == 302
    assert Fan.objects.get().display_name == "DanaFox"
    assert ConsentRecord.objects.get().display_name == "DanaFox"


def test_used_code_with_a_fresh_state_is_400(client, campaign, sandbox):
    used, first = presave(client, campaign)
    assert first.status_code == 302
    fresh = sandbox_login(start_presave(client, campaign))

    response = client.get(CALLBACK, {"code": used["code"], "state": fresh["state"]})

    assert response.status_code == 400
    assert "already used or has expired, please try again" in response.content.decode()
    assert ConsentRecord.objects.count() == 1


def test_callback_after_ten_minutes_is_400(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=11)):
        response = client.get(CALLBACK, query)

    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert no_rows()


def test_campaign_closing_during_sign_in_is_410(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))
    campaign.status = "done"
    campaign.save()

    response = client.get(CALLBACK, query)

    assert response.status_code == 410
    assert "This pre-save has closed" in response.content.decode()
    assert no_rows()


def test_sign_in_coming_back_after_the_release_is_out_is_410_out_now_with_the_smart_link(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(minutes=2))
    query = sandbox_login(start_presave(client, campaign))

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=3)):
        response = client.get(CALLBACK, query)

    page = html.unescape(response.content.decode())
    assert response.status_code == 410
    assert "It's out now" in page
    assert f'href="{campaign.get_absolute_url()}"' in page
    assert no_rows()


def test_spotify_down_during_code_exchange_is_502_with_a_retry_link(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))
    sandbox.faults(error_rate=1.0)

    response = client.get(CALLBACK, query)

    assert response.status_code == 502
    assert f'href="{campaign.get_absolute_url()}"' in response.content.decode()
    assert no_rows()


def test_profile_failing_after_the_code_exchange_leaves_no_rows(client, campaign, sandbox):
    query = sandbox_login(start_presave(client, campaign))
    # From now on the app may make one request per 30 s: the code exchange passes, the profile call gets a 429.
    sandbox.faults(rate_limit=1)

    response = client.get(CALLBACK, query)

    counters = sandbox.control("GET", "counters")
    assert counters["token_requests"] == 1 and counters["rate_limited"] == 1
    assert response.status_code == 503
    assert "busy" in response.content.decode()
    assert no_rows()


def test_unknown_service_callback_is_404(client, campaign, sandbox):
    assert client.get(reverse("fans:oauth_callback", args=["myspace"]), {"code": "x", "state": "y"}).status_code == 404


def _text_columns_of_fans_tables() -> list[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name LIKE 'fans\\_%%'
              AND data_type IN ('text', 'character varying', 'bytea', 'jsonb', 'json')
            """
        )
        return cursor.fetchall()


def test_refresh_token_is_not_stored_or_shown_in_plaintext(client, campaign, sandbox):
    query, response = presave(client, campaign, email_opt_in=True)
    thanks = client.get(response["Location"])
    refresh_token = Credential.objects.get().reveal()

    columns = _text_columns_of_fans_tables()
    assert {"fans_credential", "fans_consentrecord", "fans_fan"} <= {table for table, _, _ in columns}
    with connection.cursor() as cursor:
        for table, column, data_type in columns:
            if data_type == "bytea":
                condition = f"position(convert_to(%s, 'UTF8') in \"{column}\") > 0"
            else:
                condition = f'strpos("{column}"::text, %s) > 0'
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE {condition}', [refresh_token])
            assert cursor.fetchone()[0] == 0, f"{table}.{column} holds the refresh token"
    for page in (response, thanks):
        body = page.content.decode()
        assert refresh_token not in body
        assert query["code"] not in body


@pytest.fixture
def redirect_loop():
    """A real HTTP server that answers every request with a redirect to itself (a broken proxy in front of
    a service): requests gives up with TooManyRedirects, which is neither a timeout nor a connection error."""
    import http.server
    import threading

    class Loop(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.do_GET()

        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_service_answering_with_a_redirect_loop_is_502_not_500(client, campaign, sandbox, settings, redirect_loop):
    query = sandbox_login(start_presave(client, campaign))
    settings.SPOTIFY_ACCOUNTS_URL = redirect_loop

    response = client.get(CALLBACK, query)

    assert response.status_code == 502
    assert f'href="{campaign.get_absolute_url()}"' in response.content.decode()
    assert no_rows()


def test_the_thanks_page_of_a_per_market_campaign_tells_the_release_time_where_the_fan_is(client, sandbox):
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB")
    started = client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), HTTP_CF_IPCOUNTRY="US")
    thanks_url = client.get(CALLBACK, sandbox_login(started["Location"]))["Location"]

    html = client.get(thanks_url).content.decode()

    assert Subscription.objects.get().market == "US"
    release = campaign.release
    assert f"at {release.release_time:%H:%M}" in html and "(America/New_York)" in html, "New York's own time"


def test_pre_saving_on_a_second_service_keeps_the_first_ones_cancel_and_privacy_links(client, sandbox):
    from tests.delivery.test_deezer import presave_with_deezer

    campaign = make_campaign(services=["spotify", "deezer"])
    _, response = presave(client, campaign)
    assert presave_with_deezer(client, campaign, "alice")["Location"] == response["Location"]

    page = client.get(response["Location"]).content.decode()

    spotify, deezer = (ConsentRecord.objects.get(service=service) for service in ("spotify", "deezer"))
    revoke_tokens = [
        path.rstrip("/").rsplit("/", 1)[1] for path in re.findall(r'class="revoke-link" href="([^"]+)"', page)
    ]
    assert [hash_token(token) for token in revoke_tokens] == [spotify.revoke_token_hash, deezer.revoke_token_hash]
    privacy_urls = [html.unescape(url) for url in re.findall(r'class="privacy-link" href="([^"]+)"', page)]
    assert len(privacy_urls) == 2
    shown = [html.unescape(client.get(url).content.decode()) for url in privacy_urls]
    assert "Your Spotify account" in shown[0] and "Your Deezer account" in shown[1]
    assert "Cancel this pre-save on Spotify" in page and "Cancel this pre-save on Deezer" in page

    client.post(reverse("fans:revoke", args=[revoke_tokens[0]]))  # the Spotify one cancelled: Deezer's stays
    page = client.get(response["Location"]).content.decode()
    assert [
        hash_token(path.rstrip("/").rsplit("/", 1)[1])
        for path in re.findall(r'class="revoke-link" href="([^"]+)"', page)
    ] == [deezer.revoke_token_hash]


def test_the_thank_you_pages_kept_in_a_session_are_bounded(client, sandbox):
    from fans.authorization import THANKS_KEPT

    for n in range(THANKS_KEPT + 2):
        presave(client, make_campaign(slug=f"release-{n}"))

    kept = client.session[THANKS_KEY]
    assert list(kept) == [f"release-{n}" for n in range(2, THANKS_KEPT + 2)]
    assert all(list(entries) == ["spotify"] for entries in kept.values())


def test_an_email_address_the_service_reports_that_is_not_one_is_not_kept(client, campaign, sandbox):
    """The service's profile is its word: an address with a header in it would be mailed on release day."""
    sandbox.control("POST", "users", {"id": "mallory", "display_name": "Mallory", "email": "m@x.test\nBcc: all@x.test"})

    _, response = presave(client, campaign, email_opt_in=True, user="mallory")

    assert response.status_code == 302
    assert Fan.objects.get(display_name="Mallory").email == ""
    record = ConsentRecord.objects.get()
    assert (record.email, record.email_opt_in) == ("", False)


@pytest.mark.parametrize("email", ['"m\x01"@x.test', "\u212a@x.test", "m@[127.0.0.1]", "m@localhost"])
def test_an_address_the_service_reports_that_mail_cannot_deliver_is_not_kept(client, campaign, sandbox, email):
    """As the forms refuse it (fans/addresses.py): the sign-in goes on, the fan has no address and no email."""
    sandbox.control("POST", "users", {"id": "mallory", "display_name": "Mallory", "email": email})

    _, response = presave(client, campaign, email_opt_in=True, user="mallory")

    assert response.status_code == 302
    assert Subscription.objects.get().fan.email == ""
    record = ConsentRecord.objects.get()
    assert (record.email, record.email_opt_in) == ("", False)


def test_an_address_longer_than_an_email_field_holds_is_not_kept_as_the_forms_refuse_it(client, campaign, sandbox):
    """A valid-looking address of 255 to 320 characters passed the profile's check but not the forms' (254): kept,
    it made the sign-in fail on the column."""
    long_address = "fan@" + ".".join(["a" * 63] * 4) + ".test"  # 264 characters, each part in its limits
    assert len(long_address) > 254
    sandbox.control("POST", "users", {"id": "lee", "display_name": "Lee", "email": long_address})

    _, response = presave(client, campaign, email_opt_in=True, user="lee")

    assert response.status_code == 302
    assert Fan.objects.get(display_name="Lee").email == ""
    refused = client.post(reverse("fans:privacy_link"), {"email": long_address})
    assert refused.status_code == 400
    assert refused.context["link_form"].errors["email"] == [
        f"Ensure this value has at most 254 characters (it has {len(long_address)})."
    ]
