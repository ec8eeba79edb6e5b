"""The subscription admin: what staff see of each fan's pre-save, its attempts and consents, read-only."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from delivery.models import DeliveryAttempt
from delivery.services import service_choices
from fans import revocation
from fans.models import ConsentRecord, Credential, Fan, Subscription
from tests.conftest import make_campaign, make_consent
from tests.releases.personas import member_of

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:fans_subscription_changelist")


def change_url(subscription: Subscription) -> str:
    return reverse("admin:fans_subscription_change", args=[subscription.pk])


def subscribe(campaign, user_id: str, status: str = "pending", **fields) -> Subscription:
    fan = Fan.objects.create(
        service="spotify", service_user_id=user_id, display_name=user_id.title(), email=f"{user_id}@fans.test"
    )
    return Subscription.objects.create(fan=fan, campaign=campaign, status=status, **fields)


@pytest.fixture
def subscriptions(campaign):
    return {
        "alice": subscribe(campaign, "alice", "delivered", attempts=1, delivered_at=timezone.now(), market="GB"),
        "bob": subscribe(
            campaign,
            "bob",
            "failed",
            attempts=5,
            last_error="Gave up after 5 attempts: Spotify did not answer.",
            market="US",
        ),
        "chloe": subscribe(make_campaign(slug="second-wave"), "chloe", "revoked", last_error="Revoked."),
    }


def listed(response) -> list[str]:
    return sorted(s.fan.service_user_id for s in response.context["cl"].result_list)


def test_changelist_shows_status_attempts_and_the_last_error_in_words(staff_client, subscriptions):
    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    assert listed(response) == ["alice", "bob", "chloe"]
    html = response.content.decode()
    assert "Gave up after 5 attempts: Spotify did not answer." in html
    assert '<td class="field-service">Spotify</td>' in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "failed"}, ["bob"]),
        ({"service": "spotify"}, ["alice", "bob", "chloe"]),
        ({"q": "Chloe"}, ["chloe"]),
        ({"q": "bob@fans.test"}, ["bob"]),
        ({"q": "alice"}, ["alice"]),
    ],
)
def test_changelist_filters_and_searches(staff_client, subscriptions, params, expected):
    assert listed(staff_client.get(CHANGELIST, params)) == expected


def test_changelist_filters_by_campaign(staff_client, subscriptions):
    campaign = subscriptions["chloe"].campaign
    assert listed(staff_client.get(CHANGELIST, {"campaign": campaign.pk})) == ["chloe"]


def test_service_filter_offers_the_registrys_services(staff_client, subscriptions):
    response = staff_client.get(CHANGELIST)
    [service_filter] = [f for f in response.context["cl"].filter_specs if f.title == "service"]
    assert service_filter.lookup_choices == service_choices()
    assert ("deezer", "Deezer") in service_filter.lookup_choices


def test_changelist_queries_do_not_grow_with_the_number_of_subscriptions(
    staff_client, campaign, django_assert_max_num_queries
):
    subscribe(campaign, "first-fan")
    with django_assert_max_num_queries(13):  # + the role's permissions, the market choices (2), the attempt history
        assert staff_client.get(CHANGELIST).status_code == 200

    for i in range(10):
        other = make_campaign(slug=f"campaign-{i}")
        for j in range(3):
            subscribe(other, f"fan-{i}-{j}")
    with django_assert_max_num_queries(13):  # + the role's permissions, the market choices (2), the attempt history
        response = staff_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 31


def test_detail_shows_the_attempt_history_and_the_consent_records(staff_client, subscriptions):
    subscription = subscriptions["bob"]
    for minutes, outcome, message in [
        (3, "retry", "Spotify did not answer in time."),
        (1, "failed", "Gave up."),
    ]:
        DeliveryAttempt.objects.create(
            subscription=subscription,
            at=timezone.now() - dt.timedelta(minutes=minutes),
            call="save",
            outcome=outcome,
            http_status=503,
            message=message,
        )
    make_consent(subscription, scopes=["user-library-modify"], wording_version="2026-11")
    credential = Credential(subscription=subscription, authorized_at=timezone.now() - dt.timedelta(days=3))
    credential.store("a-refresh-token")
    credential.save()

    response = staff_client.get(change_url(subscription))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Spotify did not answer in time." in html and "Gave up." in html
    assert "user-library-modify" in html and "2026-11" in html
    assert "authorized at" in html.lower()
    assert 'alt="True"' in html, "token stored: yes"


def test_detail_says_when_no_token_is_stored(staff_client, subscriptions):
    html = staff_client.get(change_url(subscriptions["chloe"])).content.decode()
    assert 'alt="False"' in html


def test_subscriptions_are_read_only(staff_client, subscriptions):
    subscription = subscriptions["bob"]
    assert staff_client.get(reverse("admin:fans_subscription_add")).status_code == 403
    response = staff_client.post(change_url(subscription), {"status": "pending", "attempts": 0})
    assert response.status_code == 403
    assert Subscription.objects.get(pk=subscription.pk).status == "failed"
    delete_url = reverse("admin:fans_subscription_delete", args=[subscription.pk])
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Subscription.objects.filter(pk=subscription.pk).exists()


def test_consent_records_are_evidence_and_cannot_be_changed(staff_client, campaign):
    consent = ConsentRecord(campaign=campaign, service="spotify", service_user_id="dana", wording_version="v1")
    consent.issue_revoke_token()
    consent.save()

    assert staff_client.get(reverse("admin:fans_consentrecord_change", args=[consent.pk])).status_code == 200
    assert staff_client.get(reverse("admin:fans_consentrecord_add")).status_code == 403
    change = staff_client.post(reverse("admin:fans_consentrecord_change", args=[consent.pk]), {"wording_version": "v2"})
    assert change.status_code == 403
    delete_url = reverse("admin:fans_consentrecord_delete", args=[consent.pk])
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert ConsentRecord.objects.get(pk=consent.pk).wording_version == "v1"


def test_fans_cannot_be_added_by_hand(staff_client):
    assert staff_client.get(reverse("admin:fans_fan_add")).status_code == 403


def test_fan_list_searches_by_name_and_email(staff_client, subscriptions):
    response = staff_client.get(reverse("admin:fans_fan_changelist"), {"q": "alice@fans.test"})
    assert [fan.service_user_id for fan in response.context["cl"].result_list] == ["alice"]


def opt_in(subscription: Subscription) -> None:
    make_consent(subscription, wording_version="2026-11", email_opt_in=True)


def test_changelist_filters_by_market_and_email_opt_in(staff_client, subscriptions):
    opt_in(subscriptions["alice"])
    assert listed(staff_client.get(CHANGELIST, {"market": "GB"})) == ["alice"]
    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "yes"})) == ["alice"]
    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "no"})) == ["bob", "chloe"]
    campaign = subscriptions["alice"].campaign
    [market_filter] = [f for f in staff_client.get(CHANGELIST, {"campaign": campaign.pk}).context["cl"].filter_specs
                       if f.title == "market"]  # fmt: skip
    assert market_filter.lookup_choices == [("GB", "GB"), ("US", "US")]


def test_the_market_filter_lists_each_pre_save_under_the_market_it_is_delivered_in(staff_client):
    """A pre-save without a market of its own is its fan's country's when that names one, else (as one whose
    market names no country) the campaign's default (`Campaign.market_for`), and is listed there."""
    campaign = make_campaign(default_market="GB")
    subscribe(campaign, "us", market="US")
    for user_id, market, country in [("kiwi", "", "NZ"), ("hidden", "", "XX"), ("proxied", "XX", "NZ")]:
        Fan.objects.filter(pk=subscribe(campaign, user_id, market=market).fan_id).update(country=country)
    filters = {"campaign": campaign.pk}

    [market_filter] = [f for f in staff_client.get(CHANGELIST, filters).context["cl"].filter_specs
                       if f.title == "market"]  # fmt: skip
    assert market_filter.lookup_choices == [("GB", "GB"), ("NZ", "NZ"), ("US", "US")]
    assert listed(staff_client.get(CHANGELIST, {**filters, "market": "NZ"})) == ["kiwi"]
    assert listed(staff_client.get(CHANGELIST, {**filters, "market": "GB"})) == ["hidden", "proxied"]
    assert listed(staff_client.get(CHANGELIST, {**filters, "market": "US"})) == ["us"]
    assert listed(staff_client.get(CHANGELIST, {**filters, "market": "XX"})) == []

    with CaptureQueriesContext(connection) as few:
        staff_client.get(CHANGELIST, {**filters, "market": "NZ"})
    for i in range(5):
        Fan.objects.filter(pk=subscribe(campaign, f"kiwi-{i}").fan_id).update(country="NZ")
    with CaptureQueriesContext(connection) as more:
        assert len(listed(staff_client.get(CHANGELIST, {**filters, "market": "NZ"}))) == 6
    assert len(more) == len(few), "no query per row"


def test_the_market_column_shows_the_market_each_pre_save_is_delivered_in(staff_client):
    """As the market filter lists it (`Subscription.delivery_market`), saying so when it is not the pre-save's
    own: the fan's country, or the campaign's default (for a stored market that names no country too)."""
    campaign = make_campaign(default_market="GB")
    subscribe(campaign, "us", market="US")
    for user_id, market, country in [("kiwi", "", "NZ"), ("hidden", "", "XX"), ("proxied", "XX", "NZ")]:
        Fan.objects.filter(pk=subscribe(campaign, user_id, market=market).fan_id).update(country=country)

    html = staff_client.get(CHANGELIST, {"campaign": campaign.pk}).content.decode()

    fan_and_market = r'<th class="field-fan[^"]*"><a [^>]*>(\w+)</a></th>.*?<td class="field-market[^"]*">([^<]*)</td>'
    rows = re.findall(fan_and_market, html)
    assert dict(rows) == {
        "Us": "US",
        "Kiwi": "NZ (fan&#x27;s country)",
        "Hidden": "GB (default)",
        "Proxied": "GB (default; stored: XX)",
    }


def test_email_opt_in_filter_leaves_out_withdrawn_consents(staff_client, subscriptions):
    opt_in(subscriptions["alice"])
    opt_in(subscriptions["bob"])
    revocation.revoke_subscription(subscriptions["bob"].pk)

    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "yes"})) == ["alice"]
    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "no"})) == ["bob", "chloe"]


def test_email_opt_in_filter_keeps_a_pre_save_release_day_found_revoked(staff_client, subscriptions):
    """chloe's pre-save ended revoked on release day (her authorization gone), her consent row untouched: only the
    fan withdraws the consent to share, so she is still opted in."""
    opt_in(subscriptions["alice"])
    opt_in(subscriptions["chloe"])

    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "yes"})) == ["alice", "chloe"]
    assert listed(staff_client.get(CHANGELIST, {"email_opt_in": "no"})) == ["bob"]


def test_changelist_rows_show_recent_attempts_in_words(staff_client, subscriptions):
    for minutes, outcome in [(4, "retry"), (3, "retry"), (2, "retry"), (1, "failed")]:
        DeliveryAttempt.objects.create(
            subscription=subscriptions["bob"],
            at=timezone.now() - dt.timedelta(minutes=minutes),
            call="save",
            outcome=outcome,
            message="Spotify did not answer in time.",
        )
    html = staff_client.get(CHANGELIST, {"q": "bob"}).content.decode()
    assert html.count("save: will try again") == 2, "the three most recent attempts"
    assert "save: gave up" in html


def test_consent_records_filter_by_revoked(staff_client, subscriptions):
    make_consent(subscriptions["alice"])
    make_consent(subscriptions["bob"], revoked_at=timezone.now())
    changelist = reverse("admin:fans_consentrecord_changelist")

    def listed(value: str) -> list[str]:
        response = staff_client.get(changelist, {"revoked": value})
        return [record.service_user_id for record in response.context["cl"].result_list]

    assert listed("yes") == ["bob"]
    assert listed("no") == ["alice"]


@pytest.mark.parametrize("value", ["²", "é", "x" * 3000, "\x00", "12\x00"])
@pytest.mark.parametrize(
    ("changelist", "parameter"),
    [
        ("admin:fans_subscription_changelist", "campaign"),
        ("admin:fans_subscription_changelist", "status"),
        ("admin:fans_subscription_changelist", "service"),
        ("admin:fans_consentrecord_changelist", "campaign"),
        ("admin:fans_fan_changelist", "service"),
        ("admin:releases_campaign_changelist", "status"),
    ],
)
def test_odd_filter_values_in_the_console_never_make_a_500(staff_client, campaign, changelist, parameter, value):
    response = staff_client.get(reverse(changelist), {parameter: value})
    assert response.status_code in (200, 302, 400)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1"), "the admin's own 'bad filter' answer"


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("admin:fans_subscription_changelist", {"last_error__regex": "("}),  # PostgreSQL can't compile it
        ("admin:fans_fan_changelist", {"display_name__iregex": "["}),
        ("admin:releases_campaign_changelist", {"slug__regex": "("}),
        ("admin:releases_auditentry_changelist", {"username__regex": ")"}),
        ("admin:delivery_deliveryattempt_changelist", {"message__regex": "("}),
        ("admin:fans_consentrecord_changelist", {"ip_address": "not-an-ip"}),  # PostgreSQL's inet refuses it
    ],
)
def test_a_lookup_the_database_would_refuse_is_a_400(client, manager, campaign, changelist, query):
    client.force_login(manager)  # the audit log is the managers'
    assert client.get(reverse(changelist), query).status_code == 400


def test_consent_records_cannot_be_searched_by_their_revoke_token_hash(staff_client, subscriptions):
    consent = make_consent(subscriptions["alice"])
    changelist = reverse("admin:fans_consentrecord_changelist")

    response = staff_client.get(changelist, {"revoke_token_hash__startswith": consent.revoke_token_hash[:1]})

    assert response.status_code == 400, "no guessing the hash one character at a time"


@pytest.mark.parametrize(
    "query", [{"created_at__year": "9" * 20}, {"created_at__year": "-1"}, {"created_at__month": "13"}]
)
@pytest.mark.parametrize(
    "changelist",
    ["admin:fans_subscription_changelist", "admin:fans_fan_changelist", "admin:releases_campaign_changelist"],
)
def test_a_date_out_of_range_in_the_console_is_a_400(staff_client, changelist, query):
    assert staff_client.get(reverse(changelist), query).status_code == 400


def test_plausible_dates_still_filter(staff_client, campaign):
    year = str(timezone.now().year)
    assert (
        staff_client.get(reverse("admin:releases_campaign_changelist"), {"created_at__year": year}).status_code == 200
    )


def test_only_managers_see_where_and_with_what_a_fan_consented(client, subscriptions):
    """The IP address and browser of a consent are evidence for a dispute: managers see them, label staff
    (who run campaigns) do not, on the consent's page nor in the subscription's list of consents."""
    alice = subscriptions["alice"]
    record = make_consent(alice, ip_address="203.0.113.7", user_agent="Mozilla/5.0 (Evidence)")
    pages = [change_url(alice), reverse("admin:fans_consentrecord_change", args=[record.pk])]

    client.force_login(member_of("Label staff", "lena-staff"))
    for page in pages:
        response = client.get(page)
        html = response.content.decode()
        assert response.status_code == 200 and "203.0.113.7" not in html and "Evidence" not in html, page
        assert "wording" in html.lower(), "what the fan agreed to is still shown"

    by_address = reverse("admin:fans_consentrecord_changelist") + "?ip_address=203.0.113.7"
    assert client.get(by_address).status_code == 400, "nor may they ask whether a fan consented from an address"

    client.force_login(member_of("Manager", "mo-manager"))
    assert client.get(by_address).context["cl"].result_count == 1
    assert "203.0.113.7" in client.get(pages[0]).content.decode()
    html = client.get(pages[1]).content.decode()
    assert "203.0.113.7" in html and "Mozilla/5.0 (Evidence)" in html


@pytest.mark.parametrize("model", ["subscription", "fan", "consentrecord"])
def test_the_fans_tables_offer_no_filter_counts(staff_client, subscriptions, model, django_assert_max_num_queries):
    """Django's "Show counts" counts a custom filter's choices with a subquery per row and choice: on a campaign's
    millions of rows that keeps PostgreSQL busy for an hour. The fans' tables don't offer it, and asking for it
    by hand (?_facets=True) costs no more than the plain list."""
    url = reverse(f"admin:fans_{model}_changelist")
    with django_assert_max_num_queries(100) as plain:
        page = staff_client.get(url)
    assert page.status_code == 200 and "_facets" not in page.content.decode()

    with django_assert_max_num_queries(len(plain.captured_queries)) as asked:
        staff_client.get(url, {"_facets": "True"})
    assert not any("FILTER (WHERE" in query["sql"] for query in asked.captured_queries)


def test_the_change_pages_show_scopes_as_a_list_and_dates_as_the_admin_formats_them(staff_client, subscriptions):
    """Staff read the scopes a fan granted and when, not the stored JSON and a raw timestamp."""
    alice = subscriptions["alice"]
    authorized_at = dt.datetime(2026, 11, 29, 15, 24, 10, 613749, tzinfo=dt.UTC)
    credential = Credential(subscription=alice, authorized_at=authorized_at)
    credential.store("a-refresh-token")
    credential.save()
    record = make_consent(alice, scopes=["user-library-modify", "user-read-email"])
    shown = formats.localize(timezone.template_localtime(authorized_at))

    for url in (change_url(alice), reverse("admin:fans_consentrecord_change", args=[record.pk])):
        html = staff_client.get(url).content.decode()
        assert "user-library-modify, user-read-email" in html, url
        assert "[&quot;" not in html and '["' not in html, url
    html = staff_client.get(change_url(alice)).content.decode()
    assert "15:24:10" not in html and "+00:00" not in html
    assert re.search(r"Authorized at:</label>\s*<div class=\"readonly\">" + re.escape(shown) + "</div>", html)
