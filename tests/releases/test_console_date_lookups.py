"""Dates typed into a change list's address (`?created_at__gte=notadate`): a 400 that says which filter is bad,
never a 500 and never the admin's "Something's wrong with your database installation" page."""

import pytest
from django.contrib import admin
from django.db import models
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

BAD_DATES = {
    "": ["notadate", ""],
    "__exact": ["2026-13-45"],
    "__gte": ["notadate", "2026-13-45", "99999-01-01", "2026-01-01 25:61"],
    "__lt": ["yesterday", "-1"],
    "__in": ["2026-01-01,notadate"],
    "__date": ["notadate", "2026-02-30"],
    "__date__gte": ["notadate"],
    "__year": ["abc", "", "2026.5", "\u0661\u0662", "99999", "0", "-1"],
    "__iso_year": ["abc", "99999", "0"],
    "__year__gte": ["99999"],
    "__year__lt": ["-5"],
    "__month": ["abc", "0", "13"],
    "__day": ["32"],
    "__week": ["99999999999999999999"],
    "__week_day": ["abc"],
    "__quarter": ["5"],
    "__hour": ["24"],
    "__month__in": ["1,x"],
}
RANGES = ["2026-01-01", "2026-01-01,2026-02-01", "a,b", "2026-01-01,2026-02-01,2026-03-01", ""]


def changelists():
    """Every change list of the console, with its model's date and time fields."""
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        fields = [f.name for f in model._meta.concrete_fields if isinstance(f, (models.DateField, models.TimeField))]
        yield url, fields


def test_every_change_list_refuses_bad_dates_with_a_400_in_words(admin_client, campaign):
    """admin_client is a superuser, so it sees every change list, Django Q's and the users' too."""
    checked = []
    for url, fields in changelists():
        for field in fields:
            for suffix, values in BAD_DATES.items():
                for value in values:
                    key = field + suffix
                    response = admin_client.get(url, {key: value})
                    assert response.status_code == 400, f"{url}?{key}={value!r}: {response.status_code}"
                    assert f"bad “{key}” value" in response.content.decode()
                    checked.append(url)
    assert {reverse("admin:fans_subscription_changelist"), reverse("admin:releases_release_changelist")} <= set(checked)


def test_any_range_lookup_is_refused(admin_client, campaign):
    for url, fields in changelists():
        for key in [f"{name}__range" for name in fields] + ["pk__range", "id__range"]:
            for value in RANGES:
                assert admin_client.get(url, {key: value}).status_code == 400, f"{url}?{key}={value!r}"


def test_label_staff_get_the_same_400_on_their_lists(staff_client, campaign):
    for name, key, value in [
        ("fans_subscription", "created_at__gte", "notadate"),
        ("releases_release", "release_at__range", "2026-01-01,2026-02-01"),
        ("releases_release", "release_date__year", "abc"),
        ("releases_campaign", "release__release_at__gte", "soon"),  # through a relation
        ("fans_consentrecord", "revoked_at__iso_year", "0"),
    ]:
        assert staff_client.get(reverse(f"admin:{name}_changelist"), {key: value}).status_code == 400, key


def test_dates_the_console_makes_still_filter(staff_client, campaign):
    now = timezone.now()
    subscriptions = reverse("admin:fans_subscription_changelist")
    for query in [
        {"created_at__year": now.year, "created_at__month": now.month, "created_at__day": now.day},  # date hierarchy
        {"created_at__gte": f"{now:%Y-%m-%d} 00:00:00+00:00", "created_at__lt": f"{now:%Y-%m-%d} 23:59:59+00:00"},
        {"created_at__date": f"{now:%Y-%m-%d}"},
        {"delivered_at__isnull": "True"},
        {"created_at__year__in": f"{now.year},{now.year - 1}"},
    ]:
        assert staff_client.get(subscriptions, query).status_code == 200, query
    releases = reverse("admin:releases_release_changelist")
    response = staff_client.get(releases, {"release_date__year": campaign.release.release_date.year})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [campaign.release]
