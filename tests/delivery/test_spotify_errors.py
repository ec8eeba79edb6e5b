"""Spotify's refusals as it words them, JSON or plain text, over the years (the sandbox answers one wording of
each; these are the others reported from the real service): what each means for the fan."""

import pytest

from delivery.services import get_service
from delivery.services.base import AccountNotAllowed, Call, Reply, ServiceError, ServicePaused

API = "https://api.spotify.com"
PLAIN = {"Content-Type": "text/plain"}
NOT_REGISTERED = [
    b"User not registered in the Developer Dashboard",  # github.com/zmb3/spotify/issues/232
    b"User not approved for app",  # github.com/spotipy-dev/spotipy/issues/688
    b"Check settings on developer.spotify.com/dashboard, the user may not be registered.",
    b'{"error":{"status":403,"message":"The user is not registered for this application. Please check your '
    b'settings on https://developer.spotify.com/dashboard."}}',
]
OWNER_PREMIUM = (  # github.com/zmb3/spotify/issues/301 (159 bytes of plain text)
    b"Active premium subscription required for the owner of the app. When the subscription status changes, "
    b"it can take a few hours before requests are allowed again."
)


def refusal(name: str, body: bytes) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        get_service("spotify").check(Call(name, "GET", f"{API}/v1/me"), Reply(403, PLAIN, body))
    return caught.value


@pytest.mark.parametrize("body", NOT_REGISTERED)
def test_every_wording_of_a_fan_not_listed_in_development_mode_is_that(body):
    assert isinstance(refusal("profile", body), AccountNotAllowed)


@pytest.mark.parametrize("name", ["app-token", "resolve", "availability", "refresh", "save"])
def test_the_owners_lapsed_premium_pauses_whatever_the_call(name):
    refused = refusal(name, OWNER_PREMIUM)

    assert isinstance(refused, ServicePaused) and not refused.permanent
    assert "no Premium subscription any more" in refused.message


@pytest.mark.parametrize("name", ["app-token", "resolve", "availability"])
def test_another_403_on_a_call_with_our_apps_token_is_retried_not_the_fans_failure(name):
    refused = refusal(name, b'{"error":{"status":403,"message":"Forbidden"}}')

    assert not refused.permanent and refused.message == "Spotify refused our app's request (Forbidden, 403)."


def test_a_403_on_a_fans_call_keeps_the_services_words_even_in_plain_text():
    refused = refusal("save", b"Something   the service\nsaid")

    assert refused.permanent and refused.message == "Spotify refused the action: Something the service said (403)."


def test_a_proxys_error_page_is_not_copied_into_the_reason():
    refused = refusal("save", b"<html><body><h1>403 Forbidden</h1></body></html>")

    assert refused.message == "Spotify refused the action: forbidden (403)."
