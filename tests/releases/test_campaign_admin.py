"""The campaign admin: KPIs from real subscription rows, a bounded changelist, warnings, and form errors."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import scheduling
from delivery.services import get_service
from fans.models import Credential, Fan, Subscription
from releases.models import Artist, Campaign
from tests.conftest import make_campaign, wait_for

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:releases_campaign_changelist")
ADD = reverse("admin:releases_campaign_add")


def change_url(campaign: Campaign) -> str:
    return reverse("admin:releases_campaign_change", args=[campaign.pk])


def subscribe(campaign: Campaign, user_id: str, status: str = "pending") -> Subscription:
    fan, _ = Fan.objects.get_or_create(
        service="spotify", service_user_id=user_id, defaults={"display_name": user_id.title()}
    )
    return Subscription.objects.create(fan=fan, campaign=campaign, status=status)


def subscribe_mix(campaign: Campaign) -> None:
    """3 pending, 2 delivered, 1 failed, 1 revoked."""
    statuses = ["pending"] * 3 + ["delivered"] * 2 + ["failed", "revoked"]
    for i, status in enumerate(statuses):
        subscribe(campaign, f"{campaign.slug}-fan{i}", status)


def scheduled(campaign: Campaign) -> Campaign:
    scheduling.sync_schedule(campaign)
    return campaign


def form_data(campaign: Campaign | None = None, **overrides) -> dict:
    data = {
        "release": campaign.release_id if campaign else "",
        "slug": campaign.slug if campaign else "",
        "status": campaign.status if campaign else "draft",
        "subtitle": "",
        "page_text": "",
        "save_release": "on",
        "offer_email_optin": "on",
        "firing": campaign.firing if campaign else "instant",
        "default_market": campaign.default_market if campaign else "US",
        "spread_minutes": campaign.spread_minutes if campaign else 0,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not False}


def test_changelist_shows_the_four_kpis_from_subscription_rows(staff_client, campaign):
    subscribe_mix(campaign)
    other = make_campaign(slug="second-wave")
    subscribe(other, "someone-else", "delivered")

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    rows = {c.slug: c for c in response.context["cl"].result_list}
    first = rows["first-light"]
    assert (first.kpi_pending, first.kpi_delivered, first.kpi_failed, first.kpi_revoked) == (3, 2, 1, 1)
    second = rows["second-wave"]
    assert (second.kpi_pending, second.kpi_delivered, second.kpi_failed, second.kpi_revoked) == (0, 1, 0, 0)
    html = response.content.decode()
    assert '<td class="field-presaves">3 pending · 2 delivered<br><small>1 failed · 1 revoked</small></td>' in html


def test_changelist_links_the_public_page_in_a_new_tab_and_shows_the_schedule(staff_client, campaign):
    scheduling.sync_schedule(campaign)  # what the post-save hook does on commit

    response = staff_client.get(CHANGELIST)

    html = response.content.decode()
    assert 'href="http://127.0.0.1:8000/first-light/" target="_blank" rel="noopener"' in html
    scheduled = scheduling.scheduled_time(campaign)
    assert scheduled == campaign.release.release_at
    assert response.context["cl"].result_list[0].scheduled_at == scheduled
    assert f"{scheduled:%Y-%m-%d %H:%M} UTC<br><small>scheduled at the release time</small>" in html


def test_draft_campaign_is_shown_as_not_scheduled(staff_client, db):
    make_campaign(status="draft")
    response = staff_client.get(CHANGELIST)
    assert response.context["cl"].result_list[0].scheduled_at is None
    assert "not scheduled" in response.content.decode()


def test_changelist_queries_do_not_grow_with_the_number_of_campaigns(staff_client, db, django_assert_max_num_queries):
    for i in range(2):
        subscribe_mix(scheduled(make_campaign(slug=f"few-{i}")))
    with django_assert_max_num_queries(8):  # 2 of them: the role's permissions
        assert staff_client.get(CHANGELIST).status_code == 200

    for i in range(20):
        subscribe_mix(scheduled(make_campaign(slug=f"many-{i}")))
    with django_assert_max_num_queries(8):
        response = staff_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 22


def test_changelist_filters_by_status(staff_client, db):
    make_campaign(slug="live-one")
    make_campaign(slug="draft-one", status="draft")
    response = staff_client.get(CHANGELIST, {"status__exact": "draft"})
    assert [c.slug for c in response.context["cl"].result_list] == ["draft-one"]


def test_change_page_shows_the_kpi_panel_schedule_and_public_url(staff_client, campaign):
    subscribe_mix(campaign)
    scheduling.sync_schedule(campaign)

    response = staff_client.get(change_url(campaign))

    assert response.status_code == 200
    assert response.context["kpis"] == [("Pending", 3), ("Delivered", 2), ("Failed", 1), ("Revoked", 1)]
    html = response.content.decode()
    assert 'id="campaign-delivery"' in html
    assert "http://127.0.0.1:8000/first-light/" in html
    assert f"Delivery scheduled: {campaign.release.release_at:%Y-%m-%d %H:%M} UTC." in html
    assert "Deliver now" in html
    assert "will have to authorize again" not in html, "14 days out is within Spotify's six months"


def test_change_page_warns_when_the_release_is_beyond_the_authorization_lifetime(staff_client, db):
    campaign = make_campaign(release_in=dt.timedelta(days=200))
    response = staff_client.get(change_url(campaign))
    assert "Fans who pre-save now will have to authorize again" in response.content.decode()


def test_a_per_market_campaign_is_too_far_out_when_its_last_market_is(staff_client, db):
    lifetime = get_service("spotify").authorization_lifetime
    release_in = lifetime - dt.timedelta(hours=6)  # within the lifetime here, not in the last markets (UTC-12)
    instant = make_campaign(release_in=release_in)
    per_market = make_campaign(slug="per-market", release_in=release_in, firing=Campaign.Firing.PER_MARKET)

    warning = "Fans who pre-save now will have to authorize again"
    assert warning not in staff_client.get(change_url(instant)).content.decode()
    assert warning in staff_client.get(change_url(per_market)).content.decode()


def test_change_page_counts_pending_subscriptions_whose_authorization_expires_first(staff_client, db):
    campaign = make_campaign(release_in=dt.timedelta(days=100))
    for user_id, status, authorized_days_ago in [
        ("early", "pending", 120),  # 120 days ago + 182 days < 100 days from now
        ("recent", "pending", 10),
        ("done-already", "delivered", 150),
    ]:
        credential = Credential(
            subscription=subscribe(campaign, user_id, status),
            authorized_at=timezone.now() - dt.timedelta(days=authorized_days_ago),
        )
        credential.store("not-a-real-token")
        credential.save()

    response = staff_client.get(change_url(campaign))

    assert response.context["at_risk"] == 1
    assert "1 pending pre-save at risk" in response.content.decode()


def test_a_per_market_campaign_counts_authorizations_that_expire_before_the_last_market(staff_client, db):
    """Per market, the release reaches the last markets (UTC-12) half a day after its own time zone's (UTC): an
    authorization that runs out two hours after the release's own time is at risk there."""
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", release_in=dt.timedelta(days=30))
    lifetime = get_service("spotify").authorization_lifetime
    credential = Credential(
        subscription=subscribe(campaign, "tight", "pending"),
        authorized_at=campaign.release.release_at - lifetime + dt.timedelta(hours=2),  # out after the release time
    )
    credential.store("not-a-real-token")
    credential.save()

    assert staff_client.get(change_url(campaign)).context["at_risk"] == 1


def test_deliver_now_button_is_not_offered_for_a_draft(staff_client, db):
    draft = make_campaign(status="draft")
    response = staff_client.get(change_url(draft))
    assert response.context["can_deliver"] is False
    assert reverse("admin:releases_campaign_deliver_now", args=[draft.pk]) not in response.content.decode()


def test_add_page_renders(staff_client, db):
    assert staff_client.get(ADD).status_code == 200


def test_the_slug_help_names_the_address_the_page_will_have(staff_client, campaign, settings):
    """The slug's help text is read when the form is shown: it names the same site as the "Public page" link."""
    settings.PUBLIC_BASE_URL = "https://presave.label.example"

    html = staff_client.get(change_url(campaign)).content.decode()

    assert "address: https://presave.label.example/your-slug/" in html
    assert "https://presave.label.example/first-light/" in html


def test_the_page_text_help_says_when_fans_see_it(staff_client, campaign):
    """The campaign page shows it only while it takes pre-saves (templates/fans/campaign.html)."""
    html = staff_client.get(change_url(campaign)).content.decode()

    assert "Shown while the page takes pre-saves; not once the release is out or the pre-save has closed." in html


def test_new_campaign_is_saved_and_scheduled(staff_client, campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(ADD, form_data(campaign, slug="new-dawn", status="live"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    new = Campaign.objects.get(slug="new-dawn")
    assert scheduling.scheduled_time(new) == campaign.release.release_at


@pytest.mark.parametrize("slug", ["admin", "Privacy", "oauth"])
def test_reserved_slug_is_a_form_error(staff_client, campaign, slug):
    response = staff_client.post(ADD, form_data(campaign, slug=slug))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is a path the site itself uses" in errors["slug"][0]
    assert not Campaign.objects.filter(slug=slug).exists()


def test_duplicate_slug_is_a_form_error(staff_client, campaign):
    response = staff_client.post(ADD, form_data(campaign))
    assert response.status_code == 200
    assert "already exists" in response.context["adminform"].form.errors["slug"][0]


def test_campaign_cannot_go_live_after_its_release_time(staff_client, db):
    campaign = make_campaign(status="draft", release_in=-dt.timedelta(days=1))

    response = staff_client.post(change_url(campaign), form_data(campaign, status="live"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "a campaign can't go live after its release time" in errors["status"][0]
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_new_live_campaign_for_a_release_that_is_out_is_refused(staff_client, db):
    campaign = make_campaign(status="draft", release_in=-dt.timedelta(hours=1))
    response = staff_client.post(ADD, form_data(campaign, slug="too-late", status="live"))
    assert response.status_code == 200
    assert "can't go live" in response.context["adminform"].form.errors["status"][0]


def test_a_draft_for_a_past_release_can_still_be_edited(staff_client, db):
    campaign = make_campaign(status="draft", release_in=-dt.timedelta(days=1))
    response = staff_client.post(change_url(campaign), form_data(campaign, subtitle="Out now"))
    assert response.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).subtitle == "Out now"


def test_follow_artist_without_the_artists_spotify_uri_is_a_form_error(staff_client, campaign):
    Artist.objects.filter(pk=campaign.release.artist_id).update(spotify_uri="")

    response = staff_client.post(change_url(campaign), form_data(campaign, follow_artist="on"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["follow_artist"] == [
        "Following the artist on Spotify needs the artist's Spotify URI. Add it to the artist, or don't offer "
        "Spotify in this campaign."
    ]


def test_staff_choose_only_draft_or_live(staff_client, campaign):
    response = staff_client.get(change_url(campaign))
    choices = [value for value, _ in response.context["adminform"].form.fields["status"].choices]
    assert choices == ["draft", "live"]

    response = staff_client.post(change_url(campaign), form_data(campaign, status="done"))
    assert response.status_code == 200
    assert "status" in response.context["adminform"].form.errors


def test_status_is_read_only_once_delivery_started(staff_client, db):
    campaign = make_campaign(status="delivering")
    response = staff_client.post(change_url(campaign), form_data(campaign, status="draft", subtitle="Out now"))
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.status, campaign.subtitle) == ("delivering", "Out now")


def test_per_market_campaign_lists_each_markets_firing_time(staff_client, db):
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB")
    release = campaign.release
    release.release_date, release.release_time, release.timezone = dt.date(2026, 12, 4), dt.time(0, 0), "UTC"
    release.save()
    for user, market in [("tokyo-fan", "JP"), ("london-fan", "GB"), ("nowhere-fan", "")]:
        Subscription.objects.filter(pk=subscribe(campaign, user).pk).update(market=market)

    page = staff_client.get(change_url(campaign)).content.decode()

    assert "Firing by market" in page and '<th scope="col">Pending pre-saves</th>' in page
    tokyo, london = page.index("<td>JP</td>"), page.index("<td>GB</td>")
    assert tokyo < london, "soonest first"
    assert "2026-12-03 15:00 UTC" in page and "2026-12-04 00:00 UTC" in page
    assert "<td>GB</td><td>2026-12-04 00:00 UTC</td><td>2</td>" in page, "fans without a market fire with the default"


def test_market_must_be_two_letters(staff_client, campaign):
    response = staff_client.post(change_url(campaign), form_data(campaign, default_market="u1"))
    assert response.status_code == 200
    assert "A market is a two-letter country code" in response.content.decode()


def test_market_must_be_a_country_we_know_the_release_clock_of(staff_client, campaign):
    response = staff_client.post(change_url(campaign), form_data(campaign, default_market="ZZ"))
    assert response.status_code == 200
    assert "ZZ is not a country code we know." in response.content.decode()

    known = staff_client.post(change_url(campaign), form_data(campaign, default_market="XK"))  # Kosovo: ours
    assert known.status_code == 302


def test_the_firing_window_is_at_most_a_day(staff_client, campaign):
    response = staff_client.post(change_url(campaign), form_data(campaign, spread_minutes=24 * 60 + 1))
    assert response.status_code == 200
    assert "At most 1440 minutes (a day)." in response.content.decode()
    assert staff_client.post(change_url(campaign), form_data(campaign, spread_minutes=24 * 60)).status_code == 302


def test_changelist_filters_by_whether_the_release_is_out(staff_client):
    make_campaign(slug="coming")
    make_campaign(slug="gone-out", release_in=dt.timedelta(days=-1), status="done")

    def listed(value: str) -> list[str]:
        response = staff_client.get(CHANGELIST, {"release_state": value})
        return [campaign.slug for campaign in response.context["cl"].result_list]

    assert listed("upcoming") == ["coming"]
    assert listed("out") == ["gone-out"]


@pytest.mark.django_db(transaction=True)
def test_the_campaign_page_warns_while_no_worker_is_running(staff_client, start_worker):
    """Release day needs a django-q2 cluster: staff see at once when none is running, and when one stops (on the
    campaign's page and on the dashboard)."""
    campaign = make_campaign()
    campaign_page, dashboard = reverse("admin:releases_campaign_change", args=[campaign.pk]), reverse("admin:index")

    def warned(url: str = campaign_page) -> bool:
        return "No worker is running" in staff_client.get(url).content.decode()

    assert warned() and warned(dashboard)
    worker = start_worker()
    wait_for(lambda: not warned(), message="the cluster reporting in")
    # Each page asks anew; a cluster's status lives three seconds in the cache between its guard's refreshes,
    # which a loaded machine can stall past (the page then warns for a moment).
    wait_for(lambda: not warned(dashboard), message="the dashboard seeing the cluster too")
    worker.stop()
    wait_for(warned, message="the stopped cluster dropping out")
    assert warned(dashboard)
