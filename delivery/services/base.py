"""What every streaming service client offers, and the errors it raises.

One class per service (delivery/services/<service>.py) implements `Service`. Callers never ask which service
they hold: they call these methods and handle `ServiceError` by its flags.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from django.conf import settings
from django.template.defaultfilters import pluralize

from presave_site.log_filters import redact

if TYPE_CHECKING:
    from releases.models import Artist, Campaign, Release

# A release-day call that fails to connect or times out is worth retrying; these are the words staff see.
TIMEOUT_MESSAGE = "{label} did not answer in time."
CONNECTION_MESSAGE = "Could not connect to {label}."


class ServiceError(Exception):
    """A call to a service failed. `message` is short and safe to show to label staff.

    `permanent` errors are not retried. `revoked` means the fan's authorization is gone (never retried).
    `retry_after` is the wait, in seconds, the service asked for (429).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        revoked: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        # Messages quote the service's own error words, which go to DeliveryAttempt.message, last_error, the
        # console, CSVs and logs: a service (or a proxy) echoing the request must not put a token there.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.permanent = permanent or revoked
        self.revoked = revoked
        self.retry_after = retry_after
        self.status = status


class ReleaseNotFound(ServiceError):
    """The service does not know the release (yet): its fans wait for it, as for a release not out. Any other
    error while looking it up (a 5xx, a timeout) is a passing one, tried again like any call."""


class TokenRevoked(ServiceError):
    def __init__(self, message: str = "The fan's authorization was revoked or has expired.", **kwargs) -> None:
        super().__init__(message, revoked=True, **kwargs)


class AccountNotAllowed(ServiceError):
    """The service serves this app's registered test users only (Spotify's development mode: at most five,
    listed in its Developer Dashboard), and the fan is not one of them: nothing can be saved for them."""

    def __init__(self, message: str, **kwargs) -> None:
        super().__init__(message, permanent=True, **kwargs)


class ServicePaused(ServiceError):
    """The service refuses every call of ours for `retry_after` seconds: its rate limit, or our app's own
    credentials. Not the fan's failure: every worker waits, and the fans wait without using up an attempt."""

    def __init__(self, retry_after: float, message: str, **kwargs) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)


class RateLimited(ServicePaused):
    def __init__(self, retry_after: float, message: str = "Rate limited by the service.", **kwargs) -> None:
        super().__init__(retry_after, message, status=429, **kwargs)


# How long every worker waits after a service refused our app's credentials, before one call tries them again
# (staff fix the setting and restart the workers meanwhile; the fans wait, they do not fail).
APP_REFUSED_PAUSE_SECONDS = 300.0


@dataclass(frozen=True)
class Tokens:
    """What an exchange or refresh gave. A service without a refresh flow answers its lasting access token in
    both fields from `exchange_code` (it is what the vault keeps), with `expires_in` 0 (never)."""

    access_token: str
    refresh_token: str | None  # a new one when the service rotated it; None when it kept the old one
    expires_in: int
    scope: str = ""

    def __repr__(self) -> str:  # never print a token
        rotated = self.refresh_token is not None
        return f"Tokens(expires_in={self.expires_in}, scope={self.scope!r}, rotated={rotated})"


@dataclass(frozen=True)
class Profile:
    user_id: str  # the stable account key
    display_name: str
    email: str = ""
    country: str = ""


@dataclass(frozen=True)
class Call:
    """One HTTP request to a service, described once and run by either transport: `Service.run` (requests,
    for one-off calls) or `delivery.transport.AsyncTransport` (aiohttp, for release-day bulk)."""

    name: str  # what it does, as recorded in the delivery log: refresh, save, follow, profile, …
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None  # a JSON body
    headers: dict[str, str] = field(default_factory=dict)
    # A library write whose success stands: once done, a later try of the same fan skips it (a save that went
    # through is not sent again because the follow after it failed). Subscription.done_calls keeps the names.
    once: bool = False
    # What a `once` call's success is recorded as, from its answer (default: its name): Spotify's playlist
    # creation keeps the new playlist's id, so that a later try adds to that one instead of making another.
    done_as: Callable[[Reply], str] | None = None
    # False for a `once` call that does its work again when sent again (Spotify's playlist creation makes a
    # second playlist, an add adds the tracks twice): the engine stores its done entry before that fan's next
    # call goes out, so that a worker killed in between does not repeat it (`delivery.engine.Run.deliver`).
    idempotent: bool = True

    def __repr__(self) -> str:  # headers and form carry secrets
        return f"Call({self.name!r}, {self.method} {self.url})"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded JSON body; ValueError when it is not JSON."""
        return json.loads(self.body or b"null")

    def json_or_none(self) -> Any:
        """The decoded JSON body, None when it is not JSON (for reading error answers)."""
        try:
            return self.json()
        except ValueError:
            return None

    def text(self, limit: int = 200) -> str:
        """The body as one line of text, at most `limit` characters: for error answers in plain text. A page of
        markup (a proxy's error page) gives ""."""
        text = " ".join(self.body[: limit * 4].decode("utf-8", "replace").split())[:limit]
        return "" if text.startswith("<") else text


# What `Service.delivery_calls` gives: calls, each sent its reply (None when skipped).
DeliveryCalls = Generator[Call, Reply | None, None]


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def catalog_lookup(release: Release) -> tuple[str, str, str]:
    """How a service finds a release without an id of its own: (kind, code, value), that is
    ("track", "isrc", the ISRC) for a one-track release and ("album", "upc", the UPC) otherwise."""
    if release.kind == "track":
        return "track", "isrc", release.isrc
    return "album", "upc", release.upc


def not_found_by_code(label: str, release: Release) -> ReleaseNotFound:
    """The plain words, for a label's staff, of a lookup by UPC or ISRC (`catalog_lookup`) that found nothing."""
    _kind, code, value = catalog_lookup(release)
    return ReleaseNotFound(
        f"{label} has no release with this {code.upper()} ({value}) yet: check that it is the release's, or wait "
        f"until {label} lists the release."
    )


def parse_retry_after(value: str | None, default: float) -> float:
    """A 429's Retry-After in seconds (`default` when absent or not a number)."""
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default


class Service:
    """The interface one streaming service implements (see delivery/services/spotify.py).

    Release-day work is described as `Call`s (`refresh_call`, `delivery_calls`) so that the bulk engine can
    run them concurrently.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    # How long an authorization lasts however often it is refreshed (None: until revoked).
    authorization_lifetime: ClassVar[dt.timedelta | None] = None
    # What staff should know when offering this service (shown under the campaign form's services).
    staff_rules: ClassVar[str] = ""
    # Whether its sign-in works inside an app's own browser (Instagram's, TikTok's): where not, the campaign
    # page shows no button for it there, only the "open in your browser" advice.
    signs_in_in_app: ClassVar[bool] = True
    # Who the fan is to us, in the consent's "We keep …" sentence (fans/consent.py).
    identity_kept: ClassVar[str] = "your {label} name and account id"
    # Whether this service can follow an artist for the fan at all (Apple Music can't).
    can_follow: ClassVar[bool] = True
    # Whether it can make a playlist in the fan's account and add the release to it (only Spotify does).
    can_add_to_playlist: ClassVar[bool] = False
    # The fan's words for each release-day action this service takes, "save", "follow" and "playlist" (the
    # consent's list); "{playlist}" stands for the campaign's playlist name.
    action_words: ClassVar[Mapping[str, str]] = {}
    # What the service calls the fan's saved releases, as the consent's save words do: "your Spotify library".
    library_word: ClassVar[str] = "library"
    # The fan's words for each other scope this service asks for (the consent's list).
    scope_words: ClassVar[Mapping[str, str]] = {}
    # What the service's own consent screen calls the scopes we ask for, where it words them more broadly than the
    # actions we list: the campaign page names them, so that the fan meets no surprise there.
    screen_words: ClassVar[Mapping[str, str]] = {}
    # What any authorization shows us, whatever the scopes ("" when a scope's own words say it): the consent's list.
    identity_words: ClassVar[str] = ""

    def __init__(self) -> None:
        self.timeout = settings.SERVICE_TIMEOUT_SECONDS
        self.http = requests.Session()

    @classmethod
    def is_enabled(cls) -> bool:
        raise NotImplementedError

    def actions(self, campaign: Campaign) -> list[str]:
        """What this service does for `campaign`'s fans on release day, in order: "save" (the release to the
        fan's library) when the campaign saves it, "follow" (the artist) when the campaign follows and this
        service can follow this artist, "playlist" (add the release to a playlist of the fan's, made for it) when
        the campaign names a playlist and this service can. The one rule behind the scopes asked for, the
        consent's words, the thank-you page and `delivery_calls`."""
        actions = []
        if campaign.save_release:
            actions.append("save")
        if campaign.follow_artist and self.can_follow and not self.follow_needs(campaign.release.artist):
            actions.append("follow")
        if campaign.playlist_name and self.can_add_to_playlist:
            actions.append("playlist")
        return actions

    def playlist_left(self, done: Sequence[str]) -> str:
        """How a try left the playlist it made in the fan's account short of the "playlist" action (`done`: the
        entries of Subscription.done_calls): "empty" when none of the release's tracks went in, "partly filled"
        when some did; "" when it made none, or filled it (this service makes none)."""
        return ""

    # Authorization (the fan's browser, then our callback)
    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        """Exactly what `actions(campaign)` needs, and the email when the fan ticked the box."""
        raise NotImplementedError

    def action_descriptions(self, campaign: Campaign) -> list[str]:
        return [self.action_words[action].format(playlist=campaign.playlist_name) for action in self.actions(campaign)]

    def scope_descriptions(self, scopes: list[str]) -> list[str]:
        return [self.scope_words[scope] for scope in scopes if scope in self.scope_words]

    def authorize_url(self, *, redirect_uri: str, state: str, scopes: list[str], code_challenge: str) -> str:
        raise NotImplementedError

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        raise NotImplementedError

    def callback_error(self, params: Mapping[str, str]) -> str:
        """The error our callback came back with, in OAuth's words ("access_denied" when the fan said no);
        "" when there is none (RFC 6749 §4.1.2.1)."""
        return params.get("error", "")

    def profile(self, access_token: str) -> Profile:
        raise NotImplementedError

    # Release day (the worker)
    def refresh_call(self, refresh_token: str) -> Call | None:
        """The call that turns the stored token into an access token; None (the default) for a service without
        a refresh flow (Deezer's offline_access, Apple Music's Music-User-Token), whose stored token is the
        access token."""
        return None

    def parse_tokens(self, reply: Reply) -> Tokens:
        """The tokens in a `refresh_call` (or exchange) answer."""
        raise ServiceError(f"{self.label} has no token refresh.", permanent=True)

    def delivery_calls(
        self, access_token: str, campaign: Campaign, market: str = "", *, done: Sequence[str] = ()
    ) -> DeliveryCalls:
        """The library actions the campaign promised, in order (save the release, follow the artist, the
        playlist), for a fan in `market` (ISO 3166-1 alpha-2): a generator of `Call`s, sent each call's reply
        (None for a `once` call the engine skipped, its name being in `done`), so that a call can be built from the
        answer to the one before it. `done`: what earlier tries of this fan did (Subscription.done_calls). A call
        whose answer shows the action did not happen raises from `check`."""
        raise NotImplementedError

    def prepare_delivery(self, campaign: Campaign) -> None:
        """Find the release (`resolve_release`), and what else the campaign's `delivery_calls` need from the
        catalog: once per delivery run, on the run's own thread, before its fans' calls."""
        self.resolve_release(campaign.release)

    def delivery_note(self, campaign: Campaign) -> str:
        """A promised action `delivery_calls` leaves out, in words for the delivery log ("" when none is)."""
        return ""

    def can_deliver(self, release: Release) -> bool:
        """Whether the release carries what this service needs to save it: by default its UPC (a track: its
        ISRC), see `catalog_lookup`."""
        return bool(catalog_lookup(release)[2])

    def follow_needs(self, artist: Artist) -> str:
        """What this service still lacks to follow `artist` on release day, in words for staff ("the artist's
        Spotify URI"); "" when nothing is missing, or when the service has no artist follow (its
        `staff_warnings` say so). Campaign.clean refuses "follow the artist" while an offered service lacks it."""
        return ""

    def resolve_release(self, release: Release) -> str:
        """The release's id on this service, found by its URI, else its UPC (albums) or ISRC (tracks);
        an id found by search is stored on the release."""
        raise NotImplementedError

    def is_available(self, release: Release, market: str) -> bool:
        """Whether the release can be played in `market` (ISO 3166-1 alpha-2) yet."""
        raise NotImplementedError

    def staff_warnings(self, campaign: Campaign) -> list[str]:
        """What may go wrong with this campaign on this service, in words for the campaign's staff (here: a release
        this service can't find, a playlist it can't make; services add their own)."""
        warnings = []
        if campaign.playlist_name and not self.can_add_to_playlist:
            warnings.append(
                f"{self.label} can't add the release to a playlist: its fans get the rest of the pre-save, without "
                "the playlist."
            )
        if self.can_deliver(campaign.release):
            return warnings
        hours = settings.DELIVERY_AVAILABILITY_WAIT_HOURS
        return warnings + [
            f"{self.label} finds the release by its {self.release_identifiers(campaign.release)}, and this release "
            f"has none: its {self.label} fans will wait on release day, and fail {hours} hour{pluralize(hours)} "
            "later, unless one is added."
        ]

    def release_identifiers(self, release: Release) -> str:
        """What `can_deliver` looks for, in staff's words."""
        return catalog_lookup(release)[1].upper()

    # Public pages
    def listen_url(self, release: Release) -> str:
        """A public web link to the release on this service ("" when the release has no id here)."""
        return ""

    # The synchronous transport, and the one place that turns an answer into a ServiceError
    def run(self, call: Call) -> Reply:
        try:
            response = self.http.request(
                call.method,
                call.url,
                params=call.params,
                data=call.form,
                json=call.json,
                headers=call.headers,
                timeout=self.timeout,
                allow_redirects=False,  # a redirect is an error (`refuse_redirect`)
            )
        except requests.Timeout:
            raise ServiceError(TIMEOUT_MESSAGE.format(label=self.label)) from None
        except requests.ConnectionError:
            raise ServiceError(CONNECTION_MESSAGE.format(label=self.label)) from None
        except requests.RequestException as exc:  # redirect loops, broken chunking…: the service answered badly
            # The message is our own: requests' names the URL, and Deezer's token is in its query string.
            raise ServiceError(f"{self.label} answered with a broken HTTP response ({type(exc).__name__}).") from None
        reply = Reply(response.status_code, response.headers, response.content)
        self.refuse_redirect(reply)
        return self.check(call, reply)

    def refuse_redirect(self, reply: Reply) -> None:
        """Neither transport follows a redirect: the call's Authorization header, form or query would go to wherever
        the Location points. A service's API does not redirect; a proxy or a wrong base URL does."""
        if 300 <= reply.status < 400:
            raise ServiceError(
                f"{self.label} redirected the request elsewhere ({reply.status}); it was not followed, so that our "
                "credentials stay with the service. Check the service's URL setting.",
                status=reply.status,
            )

    def check(self, call: Call, reply: Reply) -> Reply:
        if reply.status >= 400:
            self.raise_for_reply(call, reply)
        return reply

    def raise_for_reply(self, call: Call, reply: Reply) -> None:
        raise NotImplementedError

    def json_object(self, reply: Reply) -> dict:
        """The reply's JSON object body; a ServiceError when the service answered something else."""
        try:
            body = reply.json()
        except ValueError:
            raise ServiceError(f"{self.label} answered with something that is not JSON.") from None
        if not isinstance(body, dict):
            raise ServiceError(f"{self.label} answered with an unexpected JSON shape.")
        return body
