"""The Content-Security-Policy header: the console (/admin/) has its own, stricter than the fan pages'."""

from django.test import Client
from django.urls import reverse

CONSOLE = "default-src 'none'"


def test_every_console_response_carries_the_console_policy(staff_client, manager, campaign):
    """The sign-in page, a change list, a campaign page, its export (and its 403) all carry it. The browser
    test (tests/browser/test_console.py) visits every kind of console page and sees nothing refused."""
    responses = {
        "sign-in": Client().get(reverse("admin:login")),
        "change list": staff_client.get(reverse("admin:fans_subscription_changelist")),
        "campaign": staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])),
        "export refused": staff_client.get(reverse("admin:releases_campaign_export", args=[campaign.pk])),
    }
    staff_client.force_login(manager)
    responses["export"] = staff_client.get(reverse("admin:releases_campaign_export", args=[campaign.pk]))

    assert {name: response.status_code for name, response in responses.items()} == {
        "sign-in": 200,
        "change list": 200,
        "campaign": 200,
        "export refused": 403,
        "export": 200,
    }
    for name, response in responses.items():
        policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
        assert policy == {
            "default-src": "'none'",
            "script-src": "'self'",
            "style-src": "'self'",
            "img-src": "'self'",
            "connect-src": "'self'",
            "form-action": "'self'",
            "base-uri": "'none'",
            "frame-ancestors": "'none'",
        }, name


def test_fan_pages_keep_their_own_policy(client, campaign):
    policy = client.get(reverse("fans:campaign", args=[campaign.slug]))["Content-Security-Policy"]

    assert CONSOLE not in policy and "default-src 'self'" in policy and "form-action" not in policy
