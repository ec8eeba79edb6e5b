"""The managers' CSV export: content, opted-in emails only, formula injection, Excel, file name, streaming."""

import csv
import io
import tracemalloc

import pytest
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from fans import revocation
from fans.models import EmailSignup, Fan, Subscription
from releases import exports
from releases.models import AuditEntry, Campaign, Release
from tests.conftest import make_campaign, make_consent
from tests.releases.personas import member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client):
    client.force_login(member_of("Manager", "mo-manager"))
    return client


def subscribe(campaign, user_id: str, *, name: str = "", email: str = "", opt_in: bool | None = None, **fields):
    fan = Fan.objects.create(
        service="spotify", service_user_id=user_id, display_name=name or user_id, email=email, country="GB"
    )
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market="GB", **fields)
    if opt_in is not None:
        make_consent(subscription, email=email, email_opt_in=opt_in)
    return subscription


def export(client, url: str) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def campaign_export_url(campaign: Campaign, excel: bool = False) -> str:
    return reverse("admin:releases_campaign_export", args=[campaign.pk]) + ("?excel=1" if excel else "")


def test_rows_carry_status_service_market_dates_and_only_opted_in_emails(manager_client):
    campaign = make_campaign()
    subscribe(campaign, "opted", email="opted@fan.test", opt_in=True, status="delivered", delivered_at=timezone.now())
    subscribe(campaign, "declined", email="declined@fan.test", opt_in=False)
    subscribe(campaign, "no-consent-row", email="quiet@fan.test")
    confirmed = timezone.now()
    EmailSignup.objects.create(
        campaign=campaign, email="inbox@fan.test", wording_version="v1", country="FR", confirmed_at=confirmed
    )
    EmailSignup.objects.create(
        campaign=campaign, email="gone@fan.test", wording_version="v1", confirmed_at=confirmed,
        unsubscribed_at=timezone.now(),
    )  # fmt: skip
    EmailSignup.objects.create(campaign=campaign, email="typed@fan.test", wording_version="v1")  # unconfirmed

    rows = export(manager_client, campaign_export_url(campaign))

    by_fan = {row["fan"]: row for row in rows if row["source"] == "pre-save"}
    assert set(by_fan) == {"opted", "declined", "no-consent-row"}
    opted = by_fan["opted"]
    assert (opted["campaign"], opted["service"], opted["status"], opted["market"]) == (
        campaign.slug,
        "spotify",
        "delivered",
        "GB",
    )
    assert opted["subscribed_at"] and opted["delivered_at"]
    assert (opted["email_opt_in"], opted["email"]) == ("yes", "opted@fan.test")
    assert by_fan["declined"]["email"] == "" and by_fan["no-consent-row"]["email"] == ""
    signups = [row for row in rows if row["source"] == "email-only sign-up"]
    assert [(row["email"], row["country"]) for row in signups] == [("inbox@fan.test", "FR")], (
        "unsubscribed and unconfirmed left out"
    )


def test_a_fan_who_withdrew_consent_is_exported_without_their_name_country_market_or_email(manager_client):
    """The consent words say we keep the fan's name and country for the pre-save they agreed to: once they take
    it back (cancelled before release day, or withdrawn after it was delivered), the row stays, for the counts,
    without them. The same fan's standing pre-save of another campaign keeps them."""
    campaign = make_campaign()
    withdrawn = subscribe(campaign, "changed-mind", email="changed@fan.test", opt_in=True)
    delivered = subscribe(campaign, "kept-album", email="kept@fan.test", opt_in=True, status="delivered")
    subscribe(campaign, "still-in", email="in@fan.test", opt_in=True)
    for subscription in (withdrawn, delivered):
        revocation.revoke_subscription(subscription.pk)
    other = make_campaign(slug="second-light")
    Subscription.objects.create(fan=withdrawn.fan, campaign=other, market="GB")
    make_consent(Subscription.objects.get(campaign=other), email_opt_in=False)

    rows = export(manager_client, campaign_export_url(campaign))

    cells = ("fan", "status", "market", "country", "email_opt_in", "email")
    assert sorted(tuple(row[cell] for cell in cells) for row in rows) == [
        ("", "delivered", "", "", "no", ""),
        ("", "revoked", "", "", "no", ""),
        ("still-in", "pending", "GB", "GB", "yes", "in@fan.test"),
    ]
    assert [row["fan"] for row in export(manager_client, campaign_export_url(other))] == ["changed-mind"]


def test_a_cancelled_pre_save_is_exported_without_its_email_one_found_revoked_keeps_it(manager_client):
    """The fan's cancel withdraws the consent to share the address: no email, opt-in "no". Release day finding the
    authorization gone (an expired or disconnected token; the consent row as it was) withdraws nothing."""
    campaign = make_campaign()
    cancelled = subscribe(campaign, "cancelled", email="cancelled@fan.test", opt_in=True, status="revoked")
    cancelled.consents.update(revoked_at=timezone.now())
    subscribe(campaign, "expired", email="expired@fan.test", opt_in=True, status="revoked")

    rows = export(manager_client, campaign_export_url(campaign))

    assert sorted((row["status"], row["email_opt_in"], row["email"]) for row in rows) == [
        ("revoked", "no", ""),
        ("revoked", "yes", "expired@fan.test"),
    ]
    artist_rows = export(manager_client, reverse("admin:releases_artist_export", args=[campaign.release.artist.pk]))
    assert sorted(row["email"] for row in artist_rows) == ["", "expired@fan.test"]


@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil")', "+1+2", "-2+3", "@SUM(A1)", "\tTabbed", "\rReturned"])
def test_cells_a_spreadsheet_would_evaluate_are_neutralized(manager_client, name):
    campaign = make_campaign()
    subscribe(campaign, "fan", name=name)

    [row] = export(manager_client, campaign_export_url(campaign))

    assert row["fan"] == "'" + name


@pytest.mark.parametrize(
    ("name", "exported"),
    [
        ("Mia;=1+1;", "Mia;'=1+1;"),
        ("Leo;=cmd|' /C calc'!A0;", "Leo;'=cmd|' /C calc'!A0;"),
        ("=A;+B;-C;@D", "'=A;'+B;'-C;'@D"),
        ("Rock; Roll", "Rock; Roll"),
    ],
)
def test_a_formula_after_a_semicolon_is_neutralized_too(manager_client, name, exported):
    """Excel with a semicolon list separator splits the comma-separated file at each ";", even inside quotes."""
    campaign = make_campaign()
    subscribe(campaign, "fan", name=name)

    [row] = export(manager_client, campaign_export_url(campaign))

    assert row["fan"] == exported
    assert not any(cell.startswith(tuple("=+-@\t\r")) for cell in row["fan"].split(";")[1:])


def test_plain_cells_are_untouched_and_unicode_survives(manager_client):
    campaign = make_campaign()
    subscribe(campaign, "fan", name='Zoë — 東京, "quoted"')

    [row] = export(manager_client, campaign_export_url(campaign))

    assert row["fan"] == 'Zoë — 東京, "quoted"'


def test_file_is_named_after_the_campaign_and_date_and_excel_gets_a_bom(manager_client):
    campaign = make_campaign(slug="first-light")
    subscribe(campaign, "fan")

    plain = manager_client.get(campaign_export_url(campaign))
    excel = manager_client.get(campaign_export_url(campaign, excel=True))

    today = timezone.now().strftime("%Y-%m-%d")
    assert plain["Content-Disposition"] == f'attachment; filename="first-light-subscribers-{today}.csv"'
    assert plain["Content-Type"] == "text/csv; charset=utf-8"
    assert not b"".join(plain.streaming_content).startswith(b"\xef\xbb\xbf")
    assert b"".join(excel.streaming_content).startswith(b"\xef\xbb\xbfcampaign,source")


def test_artist_export_holds_every_campaign_of_the_artist(manager_client):
    first = make_campaign(slug="first-light")
    second_release = Release.objects.create(
        artist=first.release.artist, title="Second", release_date=first.release.release_date, timezone="UTC"
    )
    second = Campaign.objects.create(release=second_release, slug="second", status="live")
    other = make_campaign(slug="someone-else")
    subscribe(first, "fan-1")
    subscribe(second, "fan-2")
    subscribe(other, "fan-3")

    response = manager_client.get(reverse("admin:releases_artist_export", args=[first.release.artist.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert sorted((row["campaign"], row["fan"]) for row in rows) == [("first-light", "fan-1"), ("second", "fan-2")]
    assert "nova-lark-all-campaigns-subscribers-" in response["Content-Disposition"]


def seed(campaign: Campaign, count: int) -> None:
    fans = Fan.objects.bulk_create(
        Fan(service="spotify", service_user_id=f"{campaign.slug}-{i}", display_name=f"Fan number {i:06d}")
        for i in range(count)
    )
    Subscription.objects.bulk_create(Subscription(fan=fan, campaign=campaign, market="US") for fan in fans)


def peak_memory_of_export(client, campaign: Campaign) -> tuple[int, int, int]:
    """(peak bytes allocated while streaming, chunks, rows) — each chunk is read and dropped, as a server does."""
    response = client.get(campaign_export_url(campaign))
    tracemalloc.start()
    chunks = rows = 0
    for chunk in response.streaming_content:
        chunks += 1
        rows += chunk.count(b"\n")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, chunks, rows


def test_export_streams_in_bounded_chunks_and_memory_does_not_grow_with_rows(manager_client):
    small, large = make_campaign(slug="small"), make_campaign(slug="large")
    seed(small, exports.CHUNK_SIZE)
    seed(large, exports.CHUNK_SIZE * 6)

    small_peak, _, small_rows = peak_memory_of_export(manager_client, small)
    large_peak, large_chunks, large_rows = peak_memory_of_export(manager_client, large)

    assert (small_rows, large_rows) == (exports.CHUNK_SIZE + 1, exports.CHUNK_SIZE * 6 + 1)
    assert large_chunks >= 6, "sent in chunks as rows arrive, not as one body"
    assert large_peak < small_peak * 2, f"memory grew with rows: {small_peak} → {large_peak} bytes"


@pytest.mark.parametrize("query", ["status=failed", "email_opt_in=yes&excel=1", "campaign=2", "excel=yes", "q=alice"])
def test_an_export_asked_with_filters_it_ignores_exports_nothing_and_says_so(manager_client, query):
    """The export has no filters: rather than every subscriber under a name that promises fewer, nothing."""
    campaign = make_campaign()
    subscribe(campaign, "alice", email="alice@fan.test", opt_in=True)
    page = reverse("admin:releases_campaign_change", args=[campaign.pk])
    artist = campaign.release.artist

    for url, back in [
        (campaign_export_url(campaign), page),
        (
            reverse("admin:releases_artist_export", args=[artist.pk]),
            reverse("admin:releases_artist_change", args=[artist.pk]),
        ),
    ]:
        response = manager_client.get(f"{url}?{query}", follow=True)

        assert not response.streaming and response.redirect_chain == [(back, 302)]
        said = [str(message) for message in response.context["messages"]]
        assert len(said) == 1 and said[0].startswith("Nothing was exported"), said
        assert "alice@fan.test" not in response.content.decode()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).exists()


def test_the_export_still_takes_its_own_excel_switch(manager_client):
    campaign = make_campaign()
    subscribe(campaign, "alice")
    for query in ["excel=1", "excel=0", ""]:
        assert [row["fan"] for row in export(manager_client, f"{campaign_export_url(campaign)}?{query}")] == ["alice"]


@pytest.mark.parametrize("object_id", ["999999", "abc", "1%2C2", "-1"])
def test_exporting_a_campaign_or_artist_that_does_not_exist_says_so(manager_client, object_id):
    for name in ("campaign", "artist"):
        url = reverse(f"admin:releases_{name}_export", args=["ID"]).replace("ID", object_id)
        response = manager_client.get(url, follow=True)

        assert response.status_code == 200 and not response.streaming
        said = [str(message) for message in response.context["messages"]]
        assert said and "doesn’t exist" in said[0], (url, said)


def test_every_row_ends_in_the_same_line_break_as_postgresql_writes(manager_client):
    """COPY ends each row in "\\n": the header, written by Python's csv module, ends the same, not in "\\r\\n". The
    other databases' rows, written by the csv module too (exports.iterate_csv), agree."""
    campaign = make_campaign()
    subscribe(campaign, "fan")
    EmailSignup.objects.create(campaign=campaign, email="inbox@fan.test", confirmed_at=timezone.now())

    exported = b"".join(manager_client.get(campaign_export_url(campaign)).streaming_content)
    elsewhere = b"".join(
        chunk for rows in exports.export_querysets(Q(campaign=campaign)) for chunk in exports.iterate_csv(rows)
    )

    assert exported.count(b"\n") == 3 and b"\r" not in exported
    assert elsewhere.count(b"\n") == 2 and b"\r" not in elsewhere
