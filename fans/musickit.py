"""Apple Music's sign-in: our own full page runs MusicKit JS, which hands back the fan's Music-User-Token.

Apple has no OAuth redirect for the web. The pre-save form's POST (fans.views.presave) starts a pending
authorization as for any service and is sent here (AppleMusic.authorize_url). This page loads MusicKit JS from
MUSICKIT_JS_URL, configures it with our developer token and, when the fan presses the button, calls
`authorize()` (Apple's sign-in window). static/js/musickit.js then posts the Music-User-Token, the session-bound
`state` and the CSRF token to `receive_token`, which completes the authorization like an OAuth callback
(fans.views.finish_authorization): sealed token in the vault, consent record, funnel step, thank-you page.

Works on phones: everything is one full page and a POST; no pop-up of ours.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from delivery.services import ServiceError
from delivery.services.apple_music import AppleMusic, developer_token
from fans import authorization, consent
from fans.errors import ServiceUnavailable
from fans.ratelimits import limited
from fans.views import allow, finish_authorization, shows_problems

SERVICE = AppleMusic.key
TOKEN_FIELD = "music_user_token"
MAX_TOKEN_LENGTH = 4096


@allow("GET")
@never_cache
@shows_problems
def authorize_page(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")[:100]
    authorization.enabled_service(SERVICE)
    campaign = authorization.pending_campaign(request.session, state, SERVICE)
    try:
        token = developer_token(origin=_origin(settings.PUBLIC_BASE_URL))
    except ServiceError as exc:
        raise ServiceUnavailable(
            "Apple Music sign-in isn't available right now. Please try again later.",
            retry_url=campaign.get_absolute_url(),
        ) from exc
    service = AppleMusic()
    context = {
        "campaign": campaign,
        "release": campaign.release,
        "artist": campaign.release.artist,
        "state": state,
        "developer_token": token,
        "musickit_js_url": settings.MUSICKIT_JS_URL,
        "app_name": "Pre-save",
        "consent": consent.service_consent(service, campaign),
        "revoke_any_time": consent.REVOKE_ANY_TIME,
    }
    response = render(request, "fans/musickit.html", context)
    origins = sorted({_origin(settings.MUSICKIT_JS_URL), _origin(settings.APPLE_MUSIC_API_URL)} - {""})
    extra = list(settings.MUSICKIT_CSP_ORIGINS)
    response._csp_update = {  # noqa: SLF001 - django-csp reads this attribute (its csp_update decorator sets it)
        "script-src": origins[:] + extra,
        "connect-src": origins[:] + extra,
        "img-src": origins[:] + extra,
        "frame-src": origins[:] + extra,
    }
    # Apple's sign-in window talks back to this page (window.opener): keep it across origins.
    response["Cross-Origin-Opener-Policy"] = "same-origin-allow-popups"
    return response


@sensitive_post_parameters(TOKEN_FIELD, "state")  # error reports (DEBUG pages, error trackers) show no token
@allow("POST")
@never_cache
@limited()
@shows_problems
def receive_token(request: HttpRequest) -> HttpResponse:
    """MusicKit's answer, posted by static/js/musickit.js: the Music-User-Token, or error=access_denied."""
    params = {"state": request.POST.get("state", "")[:100]}
    if request.POST.get("error") == "access_denied":
        params["error"] = "access_denied"
    else:
        params["code"] = request.POST.get(TOKEN_FIELD, "")[: MAX_TOKEN_LENGTH + 1]  # too long: refused
    return finish_authorization(request, SERVICE, params)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
