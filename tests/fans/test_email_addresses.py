"""The addresses a fan may type (fans/addresses.py), through both forms that take one: the email-only sign-up and
the request for a fresh privacy link. An address Django's mail can't deliver as typed is refused with words that
say why, and nothing is stored or sent."""

import html

import pytest
from django.urls import reverse

from fans.models import EmailSignup

pytestmark = pytest.mark.django_db

UNDELIVERABLE = [
    ("fan@example.test\x01", "without spaces or unprintable characters"),
    ("fan\x7f@example.test", "without spaces or unprintable characters"),
    ('"fan\x01"@example.test', "without spaces or unprintable characters"),
    ("fan@exam\u200bple.test", "without spaces or unprintable characters"),
    ("fan@exam\u00a0ple.test", "without spaces or unprintable characters"),
    ("josé@example.test", "no accented or non-Latin letters before the @"),
    ("\u212a@example.test", "no accented or non-Latin letters before the @"),  # KELVIN SIGN, matched as "k"
    ("fan@[127.0.0.1]", "a domain name after the @, not an IP address"),
    ("fan@localhost", "a full domain name after the @, such as example.com"),
    ("fan@" + "ü" * 60 + ".test", "The part after the @ isn't a domain name we can send to"),
]


def sign_up(client, campaign, email: str):
    return client.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": email, "consent": "1"})


def ask_for_a_link(client, email: str):
    return client.post(reverse("fans:privacy_link"), {"email": email})


@pytest.mark.parametrize("email, words", UNDELIVERABLE)
def test_the_email_sign_up_refuses_an_address_that_cannot_be_delivered(client, campaign, mailoutbox, email, words):
    response = sign_up(client, campaign, email)

    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert words in page and "Enter a valid email address" not in page
    assert not EmailSignup.objects.exists() and not mailoutbox


@pytest.mark.parametrize("email, words", UNDELIVERABLE)
def test_the_privacy_link_form_refuses_an_address_that_cannot_be_delivered(client, mailoutbox, email, words):
    response = ask_for_a_link(client, email)

    assert response.status_code == 400
    assert words in html.unescape(response.content.decode())
    assert not mailoutbox


@pytest.mark.parametrize("email", ["fan@example.test", "fan@bücher.test", "o'neil+drops@mail.example.test"])
def test_ordinary_and_internationalised_domain_addresses_are_taken(client, campaign, email):
    assert sign_up(client, campaign, email).status_code == 200
    assert ask_for_a_link(client, email).status_code == 200

    assert EmailSignup.objects.get().email == email
