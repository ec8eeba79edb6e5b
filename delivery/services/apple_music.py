"""Apple Music: an ES256 developer token, the fan's Music-User-Token from MusicKit JS, release-day library adds.

Base URLs come from settings (APPLE_MUSIC_API_URL, MUSICKIT_JS_URL) so the same code talks to Apple or to the
project's sandbox (delivery/sandbox/apple_music.py). There is no OAuth redirect: the fan authorizes on our
own MusicKit page (fans/musickit.py), which posts the Music-User-Token back; `authorize_url` points there.
There is no refresh flow either: the Music-User-Token is what the vault keeps (`refresh_call` is None), and
when Apple refuses it (403, or 401 while our developer token is still accepted) the fan must authorize again.

Apple's rules for pre-adds (shown to staff in the campaign admin, `STAFF_RULES`): the release must be on
pre-order in Apple Music; one-track singles usually cannot be pre-added, so those are added on release day.
This project adds everything on release day, after checking the release is out in the fan's storefront.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import jwt
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from delivery.services.base import (
    APP_REFUSED_PAUSE_SECONDS,
    Call,
    DeliveryCalls,
    Profile,
    RateLimited,
    Reply,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    Tokens,
    bearer,
    catalog_lookup,
    parse_retry_after,
)
from releases import markets

if TYPE_CHECKING:
    from releases.models import Campaign, Release

ACTION_WORDS = {
    "save": "Add this release to your Apple Music library on release day.",
}
STAFF_RULES = (
    "Apple Music: a pre-add needs the release available for pre-order on Apple Music (found by its UPC, or ISRC "
    "for a track). One-track singles usually can't be pre-added; fans who chose Apple Music get them added on "
    "release day. Apple Music has no artist follow, so “follow the artist” applies to the other services only."
)
ONE_TRACK_WARNING = (
    "Apple Music: this release is a single track, and one-track singles usually can't be pre-added on Apple "
    "Music. Fans who choose Apple Music get it added to their library on release day instead."
)
NO_FOLLOW_WARNING = "Apple Music has no artist follow: fans who choose Apple Music get the release only."
MUSIC_USER_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")
RETRY_AFTER_SECONDS = 5.0  # when a 429 names no Retry-After
PRIVATE_KEY_UNREADABLE = (
    "The Apple Music private key could not be read on this worker (check that APPLE_MUSIC_PRIVATE_KEY, or the file "
    "APPLE_MUSIC_PRIVATE_KEY_FILE names, holds the MusicKit .p8 key whole, BEGIN and END lines included); "
    "delivery waits."
)
FRESH_TOKEN_SECONDS = 60  # a developer token refused this soon after it was made: the settings are wrong
# How long the answer to "does Apple accept this developer token?" (`AppleMusic.developer_token_accepted`) is
# kept: a burst of 401s to fans' calls costs one check, and a key revoked meanwhile is noticed soon after.
DEVELOPER_TOKEN_CHECK_SECONDS = 10.0
RESOURCE_TYPES = {"album": "albums", "track": "songs"}  # catalog_lookup's kind → Apple's resource type

# (key id, team id, key digest, origin) → (jwt, exp)
_developer_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}
_developer_tokens_lock = threading.Lock()


def developer_token(*, now: float | None = None, origin: str = "") -> str:
    """The app's developer token: an ES256 JWT, header `kid`, claims `iss` (team id), `iat`, `exp`; made from
    the MusicKit private key, cached, and made anew APPLE_MUSIC_TOKEN_RENEW_SECONDS before it expires;
    ServicePaused when the key can't be read (an empty or garbled APPLE_MUSIC_PRIVATE_KEY).
    developer.apple.com/documentation/applemusicapi/generating-developer-tokens

    `origin`: for the token our MusicKit page embeds (public by necessity), the `origin` claim Apple recommends
    for web clients, so the token works only on our own pages; the server's own token has none."""
    key_id, team_id = settings.APPLE_MUSIC_KEY_ID, settings.APPLE_MUSIC_TEAM_ID
    private_key = settings.APPLE_MUSIC_PRIVATE_KEY.replace("\\n", "\n")
    cache_key = (key_id, team_id, hashlib.sha256(private_key.encode()).hexdigest(), origin)
    now = time.time() if now is None else now
    with _developer_tokens_lock:
        cached = _developer_tokens.get(cache_key)
        if cached and now < cached[1] - settings.APPLE_MUSIC_TOKEN_RENEW_SECONDS:
            return cached[0]
        issued = int(now)
        expires = issued + settings.APPLE_MUSIC_TOKEN_SECONDS
        try:
            token = jwt.encode(
                {"iss": team_id, "iat": issued, "exp": expires, **({"origin": [origin]} if origin else {})},
                private_key,
                algorithm="ES256",
                headers={"kid": key_id},
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            # Our app's credential, not the fans': they wait (and keep their tokens: Apple has no refresh, so a
            # token deleted is a fan lost) until the key is put right, like a developer token Apple refuses.
            raise ServicePaused(APP_REFUSED_PAUSE_SECONDS, PRIVATE_KEY_UNREADABLE) from None
        _developer_tokens[cache_key] = (token, expires)
        return token


def forget_developer_token() -> None:
    """Apple refused our developer token: the next call makes a new one."""
    with _developer_tokens_lock:
        _developer_tokens.clear()


# 400 "Insufficient Privileges": the Apple ID has no Apple Music subscription (Apple's answer in its developer
# forums, developer.apple.com/forums/thread/694455). Nothing can be added until they subscribe: never retried.
NO_SUBSCRIPTION = "40015"


class AppleMusic(Service):
    key = "apple_music"
    label = "Apple Music"
    action_words = ACTION_WORDS
    can_follow = False
    staff_rules = STAFF_RULES
    signs_in_in_app = False  # MusicKit JS's sign-in opens a pop-up that in-app browsers block
    identity_kept = "an anonymous id for your {label} sign-in (Apple shares no name, email or account id)"

    def __init__(self) -> None:
        super().__init__()
        self.api_url = settings.APPLE_MUSIC_API_URL
        self.storefront = settings.APPLE_MUSIC_STOREFRONT
        # (release pk, storefront) → catalog id, as found by catalog_id for this client's life
        self.found: dict[tuple[int, str], str] = {}
        # Authorization header → (whether Apple accepted it, monotonic time asked): `developer_token_accepted`
        self.token_checks: dict[str, tuple[bool, float]] = {}
        self.token_checks_lock = threading.Lock()

    @classmethod
    def is_enabled(cls) -> bool:
        return settings.APPLE_MUSIC_ENABLED

    # Authorization: on our MusicKit page, not at a redirect

    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        """MusicKit has no scopes: authorizing lets the app use the fan's library. Apple shares no email."""
        return ["library"]

    def authorize_url(self, *, redirect_uri: str, state: str, scopes: list[str], code_challenge: str) -> str:
        """Our own MusicKit page (fans/musickit.py) for this pending authorization."""
        return f"{settings.PUBLIC_BASE_URL}{reverse('fans:musickit')}?{urlencode({'state': state})}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        """The "code" is the Music-User-Token MusicKit JS gave the page; it lasts until the fan takes it back."""
        # It travels in a request header: only visible ASCII (no space, line break or NUL) can be one.
        if not code or len(code) > 4096 or not MUSIC_USER_TOKEN_SHAPE.fullmatch(code):
            raise TokenRevoked("MusicKit gave no usable Music-User-Token.")
        return Tokens(access_token=code, refresh_token=code, expires_in=0, scope="library")

    def profile(self, access_token: str) -> Profile:
        """developer.apple.com/documentation/applemusicapi/get-a-user-s-storefront (GET /v1/me/storefront).

        This also proves the Music-User-Token works. Apple shares no account id or name: the fan is known by a
        digest of the token (a new authorization is a new fan)."""
        body = self.json_object(self.run(self._call("profile", "GET", "/v1/me/storefront", access_token)))
        data = body.get("data") or [{}]
        storefront = str(data[0].get("id", "")) if isinstance(data[0], dict) else ""
        return Profile(
            user_id="mut-" + hashlib.sha256(access_token.encode()).hexdigest()[:32],
            display_name="Apple Music listener",
            country=storefront.upper()[:2],
        )

    def staff_warnings(self, campaign: Campaign) -> list[str]:
        release = campaign.release
        warnings = super().staff_warnings(campaign)
        if release.kind == "track":
            warnings.append(ONE_TRACK_WARNING)
        if campaign.follow_artist:
            warnings.append(NO_FOLLOW_WARNING)
        return warnings

    # Catalog

    def catalog_id(self, release: Release, storefront: str) -> str | None:
        """The release's catalog id in `storefront`, None while it is not there.
        developer.apple.com/documentation/applemusicapi/get-multiple-catalog-albums-by-upc
        (GET /v1/catalog/{storefront}/albums?filter[upc]=) and …/get-multiple-catalog-songs-by-isrc
        (GET /v1/catalog/{storefront}/songs?filter[isrc]=). Found ids are kept for this client's life."""
        key = (release.pk, storefront)
        if key in self.found:
            return self.found[key]
        kind, code, value = catalog_lookup(release)
        path = f"/v1/catalog/{storefront}/{RESOURCE_TYPES[kind]}"
        call = self._call("resolve", "GET", path, params={f"filter[{code}]": value})
        data = self.json_object(self.run(call)).get("data") or []
        if not data or not isinstance(data[0], dict) or not data[0].get("id"):
            return None
        if _is_pre_order(data[0], storefront):  # listed, but not out there yet: it waits like one not listed
            return None
        self.found[key] = str(data[0]["id"])
        return self.found[key]

    def resolve_release(self, release: Release) -> str:
        """Apple's catalog answers per storefront, so each fan's storefront is asked (`is_available`); this is
        the id in the default storefront (APPLE_MUSIC_STOREFRONT), or "" when it is not there."""
        return self.catalog_id(release, self.storefront) or ""

    def is_available(self, release: Release, market: str) -> bool:
        """Whether the fan's storefront has the release (found by UPC/ISRC there)."""
        return self.catalog_id(release, _storefront(market)) is not None

    # Release day

    def delivery_calls(
        self, access_token: str, campaign: Campaign, market: str = "", *, done: Sequence[str] = ()
    ) -> DeliveryCalls:
        """developer.apple.com/documentation/applemusicapi/add-a-resource-to-a-library
        (POST /v1/me/library?ids[albums]= → 202; ids it can't add are silently ignored), then the check that it
        is there: …/get-a-catalog-album-s-relationship-directly-by-name (GET …/albums/{id}/library).
        Apple Music has no artist follow. Neither call is `once`: a retry after a failed check adds again."""
        if "save" not in self.actions(campaign):
            return
        storefront = _storefront(market)
        catalog_id = self.catalog_id(campaign.release, storefront)
        if catalog_id is None:
            raise ServiceError(f"The release is not in Apple Music's {storefront.upper()} storefront.")
        kind = RESOURCE_TYPES[catalog_lookup(campaign.release)[0]]
        yield self._call("save", "POST", "/v1/me/library", access_token, params={f"ids[{kind}]": catalog_id})
        yield self._call("verify", "GET", f"/v1/catalog/{storefront}/{kind}/{catalog_id}/library", access_token)

    def _call(
        self, name: str, method: str, path: str, music_user_token: str = "", params: dict[str, str] | None = None
    ) -> Call:
        headers = bearer(developer_token())
        if music_user_token:
            headers["Music-User-Token"] = music_user_token
        return Call(name, method, f"{self.api_url}{path}", params=params or {}, headers=headers)

    # The one place that turns Apple's answers into success or a ServiceError

    def check(self, call: Call, reply: Reply) -> Reply:
        if reply.status >= 400:
            self.raise_for_reply(call, reply)
        if call.name == "verify" and not self.json_object(reply).get("data"):
            raise ServiceError("Apple Music accepted the add, but the release is not in the fan's library.")
        return reply

    def raise_for_reply(self, call: Call, reply: Reply) -> None:
        """developer.apple.com/documentation/applemusicapi/http-status-codes and …/handling-requests-and-responses
        (`{"errors": [{"status", "code", "title", "detail"}]}`): 401 and 403 on a call carrying the fan's
        Music-User-Token may be about that token (they must authorize again); a 401 may also be about our developer
        token, so Apple is asked which (`developer_token_accepted`). A 401 about our developer token: it is made
        anew, then retried. A 403 on a call without a fan's token is about our app (retried, never a fan's
        revocation)."""
        status = reply.status
        body = reply.json_or_none()
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        detail = str(first.get("detail") or first.get("title") or "")[:200]
        if status == 429:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), RETRY_AFTER_SECONDS)
            raise RateLimited(retry_after, "Rate limited by Apple Music.")
        if status == 401 and "Music-User-Token" in call.headers and self.developer_token_accepted(call):
            message = f"The fan's Apple Music authorization is no longer valid ({detail or 'unauthorized'})."
            raise TokenRevoked(message, status=status)
        if status == 401:
            forget_developer_token()
            if _made_just_now(call):  # a new token refused too: our MusicKit settings are wrong
                message = (
                    "Apple Music refused our developer token (check APPLE_MUSIC_KEY_ID, APPLE_MUSIC_TEAM_ID and "
                    "APPLE_MUSIC_PRIVATE_KEY); delivery waits."
                )
                raise ServicePaused(APP_REFUSED_PAUSE_SECONDS, message, status=status)
            raise ServiceError("Apple Music refused our developer token (401); a new one is made.", status=status)
        if status == 403 and "Music-User-Token" in call.headers:
            message = f"The fan's Apple Music authorization is no longer valid ({detail or 'forbidden'})."
            raise TokenRevoked(message, status=status)
        if status == 403:  # a catalog call carries no fan's token: our app was refused, not the fan
            raise ServiceError(f"Apple Music refused our app's request ({detail or 'forbidden'}, 403).", status=status)
        if status == 400 and str(first.get("code")) == NO_SUBSCRIPTION:
            message = "The fan's Apple ID has no Apple Music subscription, so nothing can be added to their library."
            raise ServiceError(message, permanent=True, status=status)
        if call.name == "verify" and status == 404:
            raise ServiceError("Apple Music accepted the add, but the release is not in the fan's library.", status=404)
        if status >= 500:
            raise ServiceError(f"Apple Music had a server error ({status}).", status=status)
        message = f"Apple Music rejected the {call.name}: {detail or 'error'} ({status})."
        raise ServiceError(message, permanent=True, status=status)

    def developer_token_accepted(self, call: Call) -> bool:
        """Whether Apple accepts the developer token `call` carried, asked with a catalog call that carries no
        fan's token: developer.apple.com/documentation/applemusicapi/get-a-storefront (GET /v1/storefronts/{id}).
        A 401 to a call with a Music-User-Token is about the fan when the developer token passes. The answer is
        kept DEVELOPER_TOKEN_CHECK_SECONDS for that token, and asked once at a time (a batch's 401s arrive
        together). Any answer but a success or a 401 (a 5xx, a 429, a timeout) goes up: nobody is revoked on it.

        It is a blocking call: on release day the transport checks an error reply in a thread of its own, never
        on its event loop (`AsyncTransport.run`)."""
        authorization = call.headers.get("Authorization", "")
        with self.token_checks_lock:
            known = self.token_checks.get(authorization)
            if known is not None and time.monotonic() - known[1] < DEVELOPER_TOKEN_CHECK_SECONDS:
                return known[0]
            check = Call(
                "developer token",
                "GET",
                f"{self.api_url}/v1/storefronts/{self.storefront.lower()}",
                headers={"Authorization": authorization},
            )
            try:
                self.run(check)
                accepted = True
            except ServiceError as exc:
                if exc.status != 401:
                    raise
                accepted = False
            self.token_checks[authorization] = (accepted, time.monotonic())
            return accepted


def _made_just_now(call: Call) -> bool:
    """Whether the call's developer token was made in the last FRESH_TOKEN_SECONDS (its `iat`, read unverified:
    it is our own token, and only its age is wanted)."""
    token = call.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        issued = jwt.decode(token, options={"verify_signature": False}).get("iat")
    except jwt.PyJWTError:
        return False
    return isinstance(issued, int | float) and time.time() - issued < FRESH_TOKEN_SECONDS


def _storefront(market: str) -> str:
    """Apple's storefront ids are lower-case ISO 3166-1 alpha-2 codes."""
    return (market or settings.APPLE_MUSIC_STOREFRONT).lower()


def _is_pre_order(resource: dict, storefront: str) -> bool:
    """Whether a catalog album or song's `attributes.releaseDate` (YYYY-MM-DD, or only a year) is after today in
    `storefront`'s market: a pre-order, not yet out there. The date is a calendar date, live from local midnight
    in each storefront (releases.markets' clock for the market), not from midnight UTC.
    developer.apple.com/documentation/applemusicapi/albums/attributes-data.dictionary"""
    attributes = resource.get("attributes")
    release_date = str(attributes.get("releaseDate") or "") if isinstance(attributes, dict) else ""
    today = timezone.now().astimezone(markets.zone_for(storefront.upper())).date()
    return release_date[:10] > today.isoformat()
