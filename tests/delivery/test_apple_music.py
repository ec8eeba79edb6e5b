"""Apple Music through the sandbox: the developer token (claims, cache, renewal), a fan's pre-add posted from
our MusicKit page, release-day adds verified in the library, a revoked Music-User-Token, a real worker."""

import asyncio
import contextlib
import datetime as dt
import time

import jwt
import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from delivery import engine, scheduling
from delivery.models import DeliveryAttempt, RateLimitPause
from delivery.ratelimit import limiter_for
from delivery.sandbox import demo_catalog
from delivery.services import ServiceError, TokenRevoked, apple_music, get_service
from delivery.services.apple_music import developer_token, forget_developer_token
from delivery.services.base import Call, Reply
from delivery.transport import AsyncTransport
from fans.models import ConsentRecord, Credential, Fan, FunnelEvent, Subscription
from releases.models import Campaign
from tests.conftest import (
    MUSICKIT_KEY_ID,
    MUSICKIT_PRIVATE_KEY,
    MUSICKIT_PUBLIC_KEY,
    MUSICKIT_TEAM_ID,
    make_campaign,
    wait_for,
)

ALBUM = f"apple_music:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"


def presave_with_apple_music(client, campaign, music_user_token: str):
    """Press "Pre-save on Apple Music", open our MusicKit page, post what MusicKit JS would post."""
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]))
    assert start.status_code == 302 and reverse("fans:musickit") in start["Location"]
    page = client.get(start["Location"])
    assert page.status_code == 200
    state = page.context["state"]
    return client.post(reverse("fans:musickit_token"), {"state": state, "music_user_token": music_user_token})


def apple_subscription(campaign, sandbox, user_id: str) -> Subscription:
    token = sandbox.authorize_apple_music(user_id)
    fan = Fan.objects.create(service="apple_music", service_user_id=f"mut-{user_id}", display_name=user_id)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market="GB")
    credential = Credential(subscription=subscription, authorized_at=dt.datetime.now(dt.UTC))
    credential.store(token)
    credential.save()
    return subscription


@pytest.fixture(autouse=True)
def no_developer_token_left_from_another_clock():
    """A test that makes a developer token on a travelled clock forgets it (`on_the_clock_of`): back on real time,
    the sandbox would refuse its `iat` in the future, and the next test's first Apple call would be refused, made
    "just now" as far as the token says, as if our MusicKit settings were wrong."""
    yield
    cached = [token for token, _ in apple_music._developer_tokens.values()]
    issued = [jwt.decode(token, options={"verify_signature": False})["iat"] for token in cached]
    assert all(iat <= time.time() + 60 for iat in issued), "a developer token dated ahead is left cached"


def test_developer_token_has_apples_claims_and_is_cached(sandbox, settings):
    token = developer_token()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": MUSICKIT_KEY_ID, "typ": "JWT"}
    claims = jwt.decode(token, MUSICKIT_PUBLIC_KEY, algorithms=["ES256"], issuer=MUSICKIT_TEAM_ID)
    assert claims["exp"] - claims["iat"] == settings.APPLE_MUSIC_TOKEN_SECONDS <= 15_777_000
    assert developer_token() == token, "cached"


def test_expired_developer_token_is_renewed_before_apple_refuses_it(sandbox, settings, db):
    first = developer_token()
    expires = jwt.decode(first, options={"verify_signature": False})["exp"]
    with on_the_clock_of(dt.datetime.fromtimestamp(expires - settings.APPLE_MUSIC_TOKEN_RENEW_SECONDS + 5, dt.UTC)):
        renewed = developer_token()
        assert renewed != first, "renewed ahead of its expiry"
        with time_machine.travel(expires + 60, tick=True):
            apple = get_service("apple_music")
            campaign = make_campaign()
            assert apple.resolve_release(campaign.release), "the sandbox (same clock) accepts the renewed token"
            assert developer_token() == renewed


def test_developer_token_refused_is_retryable_and_made_anew(sandbox, settings, db):
    apple = get_service("apple_music")
    campaign = make_campaign()
    settings.APPLE_MUSIC_TEAM_ID = "SOMEONEELSE"  # a token Apple does not accept (iss)
    with pytest.raises(ServiceError) as refused:
        apple.resolve_release(campaign.release)
    assert refused.value.status == 401 and not refused.value.permanent and not refused.value.revoked
    settings.APPLE_MUSIC_TEAM_ID = MUSICKIT_TEAM_ID
    assert apple.resolve_release(campaign.release)


@pytest.mark.django_db(transaction=True)  # the pause is written by the transport's thread, and cleared here
def test_musickit_settings_apple_refuses_on_release_day_pause_every_fan_and_fail_none(sandbox, settings):
    """A developer token refused as soon as it was made means our MusicKit settings are wrong, not the fans'
    authorizations: every worker pauses, no fan fails or uses up an attempt, and the fans are delivered once
    the setting is put right."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign()
    subscriptions = [apple_subscription(campaign, sandbox, user) for user in ("alice", "bob")]
    settings.APPLE_MUSIC_TEAM_ID = "SOMEONEELSE"  # a token Apple does not accept (iss)

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"retry": 2}
    assert sandbox.control("GET", "counters")["api_requests"] == 1, "one refused call, then everyone waited"
    errors = set(Subscription.objects.values_list("status", "attempts", "last_error"))
    assert ("pending", 0, "Apple Music refused our developer token (check APPLE_MUSIC_KEY_ID, "
            "APPLE_MUSIC_TEAM_ID and APPLE_MUSIC_PRIVATE_KEY); delivery waits.") in errors  # fmt: skip

    settings.APPLE_MUSIC_TEAM_ID = MUSICKIT_TEAM_ID  # put right; five minutes later:
    delivered_after_the_pause(campaign, subscriptions, sandbox)


@pytest.mark.django_db(transaction=True)
def test_a_revoked_musickit_key_pauses_every_fan_and_revokes_none(sandbox, settings):
    campaign = make_campaign()
    subscriptions = [apple_subscription(campaign, sandbox, user) for user in ("alice", "bob")]
    sandbox.faults(apple_revoked_keys=[settings.APPLE_MUSIC_KEY_ID])
    report = engine.deliver_campaign(campaign.pk, fan_out=False)
    assert report.counts == {"retry": 2}
    statuses = set(Subscription.objects.values_list("status", "attempts"))
    assert statuses == {("pending", 0)}, "every fan waits, nobody is revoked or uses up an attempt"
    sandbox.faults(apple_revoked_keys=None)
    delivered_after_the_pause(campaign, subscriptions, sandbox)


@pytest.mark.django_db(transaction=True)  # the pause is written by the transport's thread, and cleared here
@pytest.mark.parametrize(
    "key", ["", "-----BEGIN PRIVATE KEY-----\ngarbled\n-----END PRIVATE KEY-----"], ids=["empty", "garbled"]
)
def test_a_musickit_key_the_worker_cannot_read_pauses_delivery_and_keeps_every_fans_token(sandbox, settings, key):
    """Our own credential, not the fans': Apple has no refresh, so a token deleted is a fan lost. They wait,
    using up no attempt, and are delivered once the key is put right."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign()
    subscriptions = [apple_subscription(campaign, sandbox, user) for user in ("alice", "bob")]
    settings.APPLE_MUSIC_PRIVATE_KEY = key

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"retry": 2}
    assert set(Subscription.objects.values_list("status", "attempts")) == {("pending", 0)}
    errors = set(Subscription.objects.values_list("last_error", flat=True))
    assert any("private key could not be read" in e and "APPLE_MUSIC_PRIVATE_KEY" in e for e in errors), errors
    assert not any("garbled" in e for e in errors), "never the key itself"
    assert Credential.objects.filter(subscription__in=subscriptions).count() == 2, "every fan keeps their token"
    assert limiter_for("apple_music").paused_until() > time.time() + 240, "every worker waits"
    assert sandbox.control("GET", "counters")["api_requests"] == 0

    settings.APPLE_MUSIC_PRIVATE_KEY = MUSICKIT_PRIVATE_KEY  # put right; five minutes later:
    delivered_after_the_pause(campaign, subscriptions, sandbox)


def test_a_403_on_a_call_without_a_fans_token_revokes_nobody(sandbox, settings, db):
    """A catalog call (resolve, availability) carries no Music-User-Token: Apple's 403 there is about our app,
    and must not end every fan's pre-save as revoked (their tokens destroyed)."""
    apple = get_service("apple_music")
    body = b'{"errors": [{"status": "403", "code": "40300", "title": "Forbidden"}]}'
    catalog = Call("availability", "GET", f"{settings.APPLE_MUSIC_API_URL}/v1/catalog/us/albums/1", headers={})
    personal = Call("save", "POST", f"{settings.APPLE_MUSIC_API_URL}/v1/me/library",
                    headers={"Music-User-Token": "fan-token"})  # fmt: skip

    with pytest.raises(ServiceError) as refused:
        apple.check(catalog, Reply(403, {}, body))
    assert refused.value.status == 403 and not refused.value.revoked and not refused.value.permanent
    with pytest.raises(TokenRevoked):
        apple.check(personal, Reply(403, {}, body))


@pytest.mark.django_db
def test_presave_posts_the_music_user_token_into_the_vault_with_consent(client, sandbox):
    campaign = make_campaign()
    token = sandbox.authorize_apple_music("chloe")
    response = presave_with_apple_music(client, campaign, token)
    assert response.status_code == 302 and response["Location"] == reverse("fans:thanks", args=[campaign.slug])

    subscription = Subscription.objects.get()
    assert subscription.fan.service == "apple_music" and subscription.market == "DE", "from the fan's storefront"
    assert Credential.objects.get().reveal() == token
    consent = ConsentRecord.objects.get()
    assert consent.service == "apple_music" and consent.scopes == ["library"]
    assert client.get(reverse("fans:thanks", args=[campaign.slug])).status_code == 200
    funnel = set(FunnelEvent.objects.values_list("kind", "service"))
    assert {("click", "apple_music"), ("authorize", "apple_music")} <= funnel


@pytest.mark.django_db
def test_musickit_page_needs_a_pending_authorization_and_csrf(client, sandbox):
    campaign = make_campaign()
    assert client.get(reverse("fans:musickit"), {"state": "made-up"}).status_code == 400
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]))
    page = client.get(start["Location"])
    html = page.content.decode()
    assert sandbox.musickit_js_url in html and page.context["developer_token"] in html
    assert sandbox.url in page["Content-Security-Policy"], "MusicKit JS may load and talk to its origin"
    assert "<noscript>" in html and "sign-in needs JavaScript" in html, "without it the button stays greyed out"

    from django.test import Client

    forged = Client(enforce_csrf_checks=True)
    forged.cookies = client.cookies
    refused = forged.post(reverse("fans:musickit_token"), {"state": page.context["state"], "music_user_token": "x"})
    assert refused.status_code == 403 and not Subscription.objects.exists()


@pytest.mark.django_db
def test_an_error_report_of_the_musickit_post_hides_the_music_user_token(client, sandbox):
    from django.views.debug import SafeExceptionReporterFilter

    token = sandbox.authorize_apple_music("chloe")
    response = presave_with_apple_music(client, make_campaign(), token)
    posted = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert posted["music_user_token"] == posted["state"] == "********************"


@pytest.mark.django_db
@pytest.mark.parametrize("posted", ["abc\r\nX-Injected: 1", " ", "\U0001f3b5", "\x00abc", "x" * 5000])
def test_a_malformed_music_user_token_is_a_clear_400_and_saves_nothing(client, sandbox, posted):
    # It would go into a request header: a line break, a space or a non-ASCII character must not reach requests.
    response = presave_with_apple_music(client, make_campaign(), posted)
    assert response.status_code == 400
    assert "already used or has expired" in response.content.decode()
    assert not Subscription.objects.exists() and not Credential.objects.exists()


@pytest.mark.django_db
def test_refusing_in_musickit_saves_nothing(client, sandbox):
    campaign = make_campaign()
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]))
    state = client.get(start["Location"]).context["state"]
    response = client.post(reverse("fans:musickit_token"), {"state": state, "error": "access_denied"})
    assert "You chose Cancel on Apple Music" in response.content.decode()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_release_day_adds_to_the_library_and_verifies(sandbox):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.done_calls) == ("delivered", "save")
    assert sandbox.library("alice")["saved"] == [ALBUM]
    assert [w["endpoint"] for w in sandbox.writes("alice")] == ["POST /v1/me/library"]


@pytest.mark.django_db
def test_an_add_apple_silently_ignored_is_retried_then_recorded_as_failed(sandbox, settings):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")
    sandbox.faults(apple_ignores_library_adds=True)
    engine.deliver_campaign(campaign.pk)  # retries come due within the run (DELIVERY_RETRY_BASE_SECONDS 0.2)
    subscription.refresh_from_db()
    assert subscription.status == "failed" and subscription.attempts == settings.DELIVERY_MAX_ATTEMPTS
    assert subscription.last_error.startswith("Gave up after") and "not in the fan's library" in subscription.last_error
    attempts = DeliveryAttempt.objects.filter(subscription=subscription)
    assert {a.call for a in attempts} == {"verify"} and attempts.count() == settings.DELIVERY_MAX_ATTEMPTS


@pytest.mark.django_db
def test_an_add_the_check_found_missing_is_sent_again_at_the_next_try(sandbox, settings):
    """Apple's save is not a `once` call: after a failed check the next try adds again (and then finds it)."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 3600  # the retry is not due within this run
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")
    sandbox.faults(apple_ignores_library_adds=True)
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.attempts, subscription.done_calls) == ("pending", 1, "")

    sandbox.faults(apple_ignores_library_adds=False)
    Subscription.objects.filter(pk=subscription.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == "delivered"
    assert sandbox.library("alice")["saved"] == [ALBUM]


@pytest.mark.django_db
def test_an_add_outside_the_fans_storefront_is_not_counted_as_delivered(sandbox, settings):
    """The market we hold is not the fan's storefront (Apple adds from the storefront only): the 202 is not
    taken at its word."""
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")  # storefront gb
    Subscription.objects.filter(pk=subscription.pk).update(market="US")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["US"]})
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "failed" and "not in the fan's library" in subscription.last_error
    assert sandbox.library("alice")["saved"] == []


@pytest.mark.django_db
def test_revoked_music_user_token_is_revoked(sandbox):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "bob")
    sandbox.control("POST", "users/bob/revoke")
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "revoked" and "no longer valid" in subscription.last_error
    assert not Credential.objects.filter(subscription=subscription).exists()
    with pytest.raises(TokenRevoked):
        get_service("apple_music").profile("AmUT-never-issued")


@pytest.mark.django_db
def test_an_apple_id_without_a_subscription_fails_with_a_reason_and_is_not_retried(sandbox):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "bob")
    sandbox.faults(apple_unsubscribed_users=["bob"])
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "failed" and "no Apple Music subscription" in subscription.last_error


@pytest.mark.django_db(transaction=True)  # a pause would be written by the transport's thread
def test_a_fans_music_user_token_refused_with_401_revokes_that_fan_only(sandbox, settings):
    """Apple answers 401 to the Music-User-Token of fans it no longer honours (its docs: they must authorize
    again). Our developer token is accepted meanwhile: those fans are revoked, the others delivered, and nobody
    waits for a pause meant for a refused developer token."""
    campaign = make_campaign()
    sandbox.control("POST", "users", {"id": "dana", "country": "GB"})
    alice, bob, chloe, dana = (apple_subscription(campaign, sandbox, u) for u in ("alice", "bob", "chloe", "dana"))
    sandbox.faults(apple_unauthorized_users=["bob", "dana"])

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"delivered": 2, "revoked": 2}
    for revoked in (bob, dana):
        revoked.refresh_from_db()
        assert revoked.status == "revoked" and "no longer valid (Invalid Music-User-Token)" in revoked.last_error
        assert not Credential.objects.filter(subscription=revoked).exists()
    assert {s.status for s in Subscription.objects.filter(pk__in=[alice.pk, chloe.pk])} == {"delivered"}
    assert sandbox.library("alice")["saved"] == sandbox.library("chloe")["saved"] == [ALBUM]
    assert not RateLimitPause.objects.exists(), "no worker paused"
    # The release looked up in two storefronts, two calls for each fan delivered, one for each fan revoked, and
    # one check that Apple accepts our developer token: the two 401s came together and share it.
    assert sandbox.control("GET", "counters")["api_requests"] == 2 + 2 * 2 + 2 + 1


@pytest.mark.django_db(transaction=True)  # the run's thread and the transport's share the database
def test_asking_apple_about_our_developer_token_after_a_401_never_stalls_the_delivery_loop(sandbox):
    """A 401 to a fan's call is sorted out with a call of its own (does Apple still accept our developer
    token?). The transport's event loop, where every other fan's calls are in flight, must not wait for it:
    with each of Apple's answers taking a second, the loop never stops that long."""
    campaign = make_campaign(status="delivering")
    bob = apple_subscription(campaign, sandbox, "bob")
    sandbox.faults(apple_unauthorized_users=["bob"], latency_ms=1000)
    gaps = []

    async def tick() -> None:  # on the loop: how long each 10 ms sleep really took
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - before)

    with AsyncTransport(concurrency=8, timeout=10) as transport:
        ticking = transport.start(tick())
        campaign = Campaign.objects.select_related("release__artist").get(pk=campaign.pk)
        report = engine.Run(campaign, transport).run()
        ticking.cancel()

    assert report.counts == {"revoked": 1}
    bob.refresh_from_db()
    assert bob.status == "revoked" and "no longer valid" in bob.last_error
    # The release looked up in two storefronts, the add, and the check that Apple accepts our developer token.
    assert sandbox.control("GET", "counters")["api_requests"] == 4
    assert max(gaps) < 0.5, f"the loop stood still for {max(gaps):.2f} s"


def test_a_401_to_a_fans_call_is_the_fans_only_while_apple_accepts_our_developer_token(sandbox, settings, db):
    apple = get_service("apple_music")
    body = b'{"errors": [{"status": "401", "code": "40100", "title": "Unauthenticated"}]}'

    personal = apple._call("save", "POST", "/v1/me/library", "fan-token")
    with pytest.raises(TokenRevoked):
        apple.check(personal, Reply(401, {}, body))

    settings.APPLE_MUSIC_TEAM_ID = "SOMEONEELSE"  # a developer token Apple does not accept (iss), made just now
    personal = apple._call("save", "POST", "/v1/me/library", "fan-token")
    with pytest.raises(ServiceError) as refused:
        apple.check(personal, Reply(401, {}, body))
    assert refused.value.retry_after and not refused.value.revoked, "every worker waits, no fan is revoked"


@pytest.mark.django_db
def test_release_not_out_in_the_fans_storefront_waits(sandbox):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["US"]})
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "pending" and "not available on Apple Music in GB" in subscription.last_error


@pytest.mark.django_db
def test_a_pre_order_whose_release_date_is_ahead_waits(sandbox):
    campaign = make_campaign()
    subscription = apple_subscription(campaign, sandbox, "alice")
    # Two days ahead in UTC: a day ahead in the fan's GB storefront too, whatever the hour (British Summer Time's
    # 23:00 UTC is already tomorrow there).
    ahead = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    album = {"id": demo_catalog.NOVA_LARK_ALBUM_ID, "name": "Glass Harbour", "upc": demo_catalog.NOVA_LARK_ALBUM_UPC}
    sandbox.control(
        "POST", "catalog/albums", {**album, "artist_id": demo_catalog.NOVA_LARK_ARTIST_ID, "release_date": ahead}
    )
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "pending" and "not available on Apple Music" in subscription.last_error
    assert not sandbox.library("alice").get("albums")


@contextlib.contextmanager
def on_the_clock_of(moment: dt.datetime):
    """time_machine's travel to `moment` (the sandbox's clock travels with ours), then the developer token made on
    that clock forgotten: back on real time, the sandbox would find its `iat` in the future."""
    try:
        with time_machine.travel(moment, tick=True):
            yield
    finally:
        forget_developer_token()


def release_dated(sandbox, day: str) -> None:
    """The sandbox's Glass Harbour, out in NZ, US and GB, with Apple's `releaseDate` `day` (a calendar date)."""
    album = {"id": demo_catalog.NOVA_LARK_ALBUM_ID, "name": "Glass Harbour", "upc": demo_catalog.NOVA_LARK_ALBUM_UPC}
    sandbox.control(
        "POST",
        "catalog/albums",
        {
            **album,
            "artist_id": demo_catalog.NOVA_LARK_ARTIST_ID,
            "release_date": day,
            "available_markets": ["NZ", "US", "GB"],
        },
    )


@pytest.mark.django_db
def test_a_release_date_begun_in_the_fans_storefront_is_out_there_before_it_is_that_date_in_utc(sandbox):
    """Apple's releaseDate is a calendar date, live from local midnight in each storefront: at 12:00 UTC on 3
    December it is already 4 December (01:00) in Auckland, and a release dated 4 December is out for a fan in
    NZ, not a pre-order to wait 11 hours for; a fan in the US (07:00 on 3 December) still waits."""
    with on_the_clock_of(dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)):
        campaign = make_campaign()
        in_nz = apple_subscription(campaign, sandbox, "alice")
        in_us = apple_subscription(campaign, sandbox, "bob")
        Subscription.objects.filter(pk=in_nz.pk).update(market="NZ")
        Subscription.objects.filter(pk=in_us.pk).update(market="US")
        release_dated(sandbox, "2026-12-04")

        engine.deliver_campaign(campaign.pk)

    in_nz.refresh_from_db(), in_us.refresh_from_db()
    assert in_nz.status == "delivered" and sandbox.library("alice")["saved"] == [ALBUM]
    assert in_us.status == "pending" and "not available on Apple Music in US" in in_us.last_error


@pytest.mark.django_db
def test_a_release_date_not_begun_in_the_fans_storefront_waits_though_it_is_that_date_in_utc(sandbox):
    """At 02:00 UTC on 4 December it is still 21:00 on 3 December in New York: a release dated 4 December is a
    pre-order in the US storefront until local midnight there, and its fan waits; a fan in GB has it."""
    with on_the_clock_of(dt.datetime(2026, 12, 4, 2, tzinfo=dt.UTC)):
        campaign = make_campaign()
        in_us = apple_subscription(campaign, sandbox, "alice")
        in_gb = apple_subscription(campaign, sandbox, "bob")
        Subscription.objects.filter(pk=in_us.pk).update(market="US")
        release_dated(sandbox, "2026-12-04")

        engine.deliver_campaign(campaign.pk)

    in_us.refresh_from_db(), in_gb.refresh_from_db()
    assert in_us.status == "pending" and "not available on Apple Music in US" in in_us.last_error
    assert not sandbox.library("alice").get("saved")
    assert in_gb.status == "delivered" and sandbox.library("bob")["saved"] == [ALBUM]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_apple_music_and_spotify_fans_alike(client, sandbox, start_worker):
    from tests.conftest import make_subscription

    campaign = make_campaign(release_in=dt.timedelta(days=2))
    presave_with_apple_music(client, campaign, sandbox.authorize_apple_music("chloe"))
    make_subscription(campaign, sandbox, "alice")
    release = campaign.release
    release.release_date = dt.date.today() - dt.timedelta(days=1)
    release.save()
    start_worker()
    started = time.monotonic()
    scheduling.deliver_now(campaign)
    wait_for(lambda: not Subscription.objects.filter(status="pending").exists(), timeout=60, message="the delivery")
    assert time.monotonic() - started < 60
    assert set(Subscription.objects.values_list("fan__service", "status")) == {
        ("apple_music", "delivered"),
        ("spotify", "delivered"),
    }
    assert sandbox.library("chloe")["saved"] == [ALBUM]


@pytest.mark.django_db
def test_catalog_ids_are_looked_up_in_each_fans_storefront(sandbox, settings):
    campaign = make_campaign()
    in_gb = apple_subscription(campaign, sandbox, "alice")
    in_us = apple_subscription(campaign, sandbox, "bob")
    Subscription.objects.filter(pk=in_us.pk).update(market="US")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    assert settings.APPLE_MUSIC_STOREFRONT == "us", "the default storefront does not have it"

    engine.deliver_campaign(campaign.pk)
    in_gb.refresh_from_db(), in_us.refresh_from_db()
    assert in_gb.status == "delivered" and sandbox.library("alice")["saved"] == [ALBUM]
    assert in_us.status == "pending" and "not available on Apple Music in US" in in_us.last_error


@pytest.mark.django_db
def test_consent_says_what_apple_music_really_shares(sandbox):
    from fans import consent

    campaign = make_campaign()
    words = consent.service_consent(get_service("apple_music"), campaign)
    assert words.always == ["Add this release to your Apple Music library on release day."]
    assert words.with_email == [] and "Apple shares no name, email or account id" in words.what_we_keep
    assert "Deezer name and account id" in consent.service_consent(get_service("deezer"), campaign).what_we_keep


@pytest.mark.django_db
def test_the_token_the_musickit_page_embeds_is_short_lived_and_bound_to_our_origin(client, sandbox, settings):
    campaign = make_campaign()
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]))
    page = client.get(start["Location"])
    assert page["Cache-Control"].startswith("max-age=0") and "no-store" in page["Cache-Control"]

    embedded = jwt.decode(page.context["developer_token"], MUSICKIT_PUBLIC_KEY, algorithms=["ES256"])
    assert embedded["origin"] == [settings.PUBLIC_BASE_URL], "Apple's recommended claim for web clients"
    assert embedded["exp"] - embedded["iat"] <= 12 * 3600
    server = jwt.decode(developer_token(), MUSICKIT_PUBLIC_KEY, algorithms=["ES256"])
    assert "origin" not in server, "the worker's calls carry no Origin"


def delivered_after_the_pause(campaign, subscriptions, sandbox) -> None:
    """Five minutes later (the pause and the fans' wait cut short): alice and bob are delivered."""
    RateLimitPause.objects.all().delete()
    Subscription.objects.update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert {s.status for s in Subscription.objects.filter(pk__in=[s.pk for s in subscriptions])} == {"delivered"}
    assert sandbox.library("alice")["saved"] == sandbox.library("bob")["saved"] == [ALBUM]


@pytest.mark.django_db
def test_an_apple_music_fan_who_ticks_the_email_box_is_not_opted_in_to_email(client, sandbox):
    """Apple shares no address: ticking the box leaves nothing we may email. The fan is told so on the
    thank-you page and their privacy page, and is neither exported nor filtered as opted in."""
    import csv
    import html
    import io

    from django.test import Client

    from tests.releases.personas import member_of

    campaign = make_campaign()
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]), {"email_opt_in": "1"})
    state = client.get(start["Location"]).context["state"]
    token = sandbox.authorize_apple_music("alice")
    client.post(reverse("fans:musickit_token"), {"state": state, "music_user_token": token})

    consent = ConsentRecord.objects.get()
    assert (consent.email, consent.email_opt_in) == ("", False)
    thanks = client.get(reverse("fans:thanks", args=[campaign.slug]))
    assert "Apple Music didn't share your email address with us, so we can't send one" in html.unescape(
        thanks.content.decode()
    )
    [presaved] = thanks.context["presaves"]
    privacy = html.unescape(client.get(presaved["privacy_url"]).content.decode())
    assert "none (Apple Music doesn't share your address with us)" in privacy

    manager = Client()
    manager.force_login(member_of("Manager", "mo-manager"))
    exported = manager.get(reverse("admin:releases_campaign_export", args=[campaign.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert [(row["service"], row["email_opt_in"], row["email"]) for row in rows] == [("apple_music", "no", "")]
    changelist = reverse("admin:fans_subscription_changelist")
    assert not manager.get(changelist, {"email_opt_in": "yes"}).context["cl"].result_list
    assert len(manager.get(changelist, {"email_opt_in": "no"}).context["cl"].result_list) == 1
