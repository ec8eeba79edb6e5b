"""A fan authorizes a streaming service for one campaign: start (redirect to the service) and complete (callback).

The flow is OAuth's Authorization Code flow with PKCE. Each start keeps, in the fan's session and keyed by
its random `state`, what the callback needs: the campaign, the service, the PKCE code verifier, the email
opt-in choice and when it started. Several may be pending at once (two tabs, two campaigns). The callback
pops its entry, so a replayed callback finds nothing, and writes the fan, subscription, sealed token and
consent record in one transaction, after every call to the service has succeeded.

Tokens and codes are never logged, shown, or stored outside the token vault.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from delivery import services
from delivery.services import (
    SERVICES,
    Profile,
    RateLimited,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    Tokens,
)
from fans import addresses, consent, inapp, revocation, vault
from fans.errors import (
    AccountNotListed,
    BadAuthorizationState,
    CampaignClosed,
    CodeRejected,
    ConsentDenied,
    FanFlowError,
    NotFound,
    OpenInBrowser,
    OutNow,
    ServiceBusy,
    ServiceUnavailable,
)
from fans.models import ConsentRecord, Credential, Fan, Subscription
from releases import markets
from releases.models import Campaign

logger = logging.getLogger(__name__)

PENDING_KEY = "fans.pending_authorizations"
# What the thank-you page shows: per campaign slug, per service, the pre-save this session made there (a fan may
# pre-save one release on two services in one browser); the latest THANKS_KEPT campaigns.
THANKS_KEY = "fans.presaved"
THANKS_KEPT = 10
# The states of the sign-ins this session completed (the latest COMPLETED_KEPT), with their campaign's slug: the
# callback opened again (a reload, the back button) shows the thank-you page, not "start again".
COMPLETED_KEY = "fans.completed"
COMPLETED_KEPT = 10
PENDING_SECONDS = 10 * 60
MAX_PENDING = 10  # per session: the oldest are dropped beyond this
USER_AGENT_MAX = 500
LOGGABLE_ERROR = re.compile(r"[a-z_]{1,40}")


def thanks_aad(consent_id: int) -> bytes:
    """What binds a revoke token sealed in the session to its consent record."""
    return f"fans.thanks:{consent_id}".encode()


def thanks_revoke_token(presaved: dict) -> str:
    """The revoke token a session's THANKS_KEY entry keeps sealed (`complete`); "" when it no longer opens (its
    vault key was taken out). Sessions from before the sealing keep it as it was given."""
    if "sealed_revoke_token" not in presaved:
        return presaved.get("revoke_token", "")
    try:
        return vault.unseal_text(presaved["sealed_revoke_token"], aad=thanks_aad(presaved.get("consent", 0)))
    except vault.VaultError:
        return ""


def thanks_entries(session: SessionBase, slug: str) -> list[dict]:
    """The THANKS_KEY entries of campaign `slug`, one per service, in the order they were made. A session from
    before they were kept per service holds one entry, itself."""
    kept = session.get(THANKS_KEY, {}).get(slug)
    if not isinstance(kept, dict):
        return []
    if "service" in kept:
        return [kept]
    return [entry for entry in kept.values() if isinstance(entry, dict)]


def _remember_thanks(session: SessionBase, slug: str, service_key: str, entry: dict) -> None:
    """Keep `entry` for the thank-you page of campaign `slug`, beside the session's pre-saves there on other
    services (one per service: a later one on the same service replaces it); the campaign moves to the latest."""
    kept = dict(session.get(THANKS_KEY, {}))
    earlier = {e.get("service", ""): e for e in thanks_entries(session, slug) if e.get("service") != service_key}
    kept.pop(slug, None)
    kept[slug] = {**earlier, service_key: entry}
    session[THANKS_KEY] = dict(list(kept.items())[-THANKS_KEPT:])


class AlreadyCompleted(Exception):
    """The callback of a sign-in this session already completed, opened again: `slug` names its campaign."""

    def __init__(self, slug: str) -> None:
        super().__init__(slug)
        self.slug = slug


@dataclass(frozen=True)
class Presaved:
    """A completed authorization. `revoke_token` is the only copy of the plaintext: show it now."""

    subscription: Subscription
    consent: ConsentRecord
    revoke_token: str


def loggable_error(error: str) -> str:
    """The callback's `error` as a log may show it: OAuth's codes (RFC 6749 §4.1.2.1: access_denied,
    server_error…) as they are, anything else, which anyone can put in the callback's query (a newline forging
    a log line), as "unrecognised error"."""
    return error if LOGGABLE_ERROR.fullmatch(error) else "unrecognised error"


# Lookups shared by both halves -----------------------------------------------------------------------------


def enabled_service(key: str) -> Service:
    """The client for service `key`; unknown or switched-off services are a 404."""
    cls = SERVICES.get(key)
    if cls is None or not cls.is_enabled():
        raise NotFound("We don't offer pre-saves on that service.")
    return cls()


def open_campaign(campaign: Campaign, market: str = "") -> Campaign:
    """`campaign`, if a fan in `market` (the country seen on the page; "" for the default) may pre-save."""
    if campaign.is_out_in(market):
        raise OutNow(
            f"{campaign.release.title} is out now, so there's nothing left to pre-save: listen to it now.",
            retry_url=campaign.get_absolute_url(),
        )
    if not campaign.accepts_presaves_in(market):
        raise CampaignClosed(
            "This release is out or its pre-save has ended, so there's nothing left to pre-save.",
            retry_url=campaign.get_absolute_url(),
        )
    return campaign


def with_current_status(campaign: Campaign) -> Campaign:
    """`campaign` (a cached page's, which another process may not have dropped yet) with its status as the
    database has it now: a delivery started since must close the pre-save before the fan signs in, not after.
    A copy: the cached campaign is shared and only read."""
    status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
    if status in (None, Campaign.Status.DRAFT):
        raise NotFound("There's no pre-save at this address. Check the link, or ask the artist for a new one.")
    current = copy.copy(campaign)
    current.status = status
    return current


def redirect_uri(service_key: str) -> str:
    """The callback's absolute URL: exactly what is registered with the service."""
    return settings.PUBLIC_BASE_URL + reverse("fans:oauth_callback", args=[service_key])


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# Start -----------------------------------------------------------------------------------------------------


def start(
    session: SessionBase,
    *,
    campaign: Campaign,
    service_key: str,
    email_opt_in: bool,
    seen_country: str = "",
    in_app: inapp.InAppBrowser | None = None,
    utm: Mapping[str, str] | None = None,
) -> str:
    """Remember a new pending authorization in `session` for the public `campaign` (fans.pagecache's); returns
    the service's authorization URL. `in_app`: the app's browser the fan is in, if any (fans.inapp.detect);
    `utm`: the visit's cleaned UTM values (fans.tracking.utm_values), kept by the links back to the page (in the
    phone's browser, or this one) when the service's sign-in can't work in the app's."""
    service = enabled_service(service_key)
    open_campaign(with_current_status(campaign), markets.normalize(seen_country))
    if type(service) not in campaign.offered_services():  # a hand-made form: the page offers no such button
        raise NotFound(f"This pre-save isn't offered on {service.label}. Go back and pick one of the page's buttons.")
    if in_app and not service.signs_in_in_app:  # a hand-made form too: the page shows its advice instead
        page_url = campaign.public_url()
        raise OpenInBrowser(
            f"{service.label} sign-in can't work inside {in_app.label}'s browser. To pre-save on {service.label}, "
            "open the pre-save page in your phone's own browser. Nothing was saved or shared.",
            in_app=in_app,
            intent_url=inapp.android_intent_url(page_url, utm) if in_app.is_android else "",
            retry_url=inapp.with_query(campaign.get_absolute_url(), utm),
        )
    email_opt_in = bool(email_opt_in and campaign.offer_email_optin)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters: within PKCE's 43–128
    pending = _pending(session)
    pending[state] = {
        "campaign": campaign.pk,
        "service": service.key,
        "code_verifier": verifier,
        "email_opt_in": email_opt_in,
        "seen_country": seen_country,
        "started_at": timezone.now().timestamp(),
    }
    for old in sorted(pending, key=lambda s: pending[s]["started_at"])[:-MAX_PENDING]:
        del pending[old]
    session[PENDING_KEY] = pending
    return service.authorize_url(
        redirect_uri=redirect_uri(service.key),
        state=state,
        scopes=service.scopes_for(campaign, email_opt_in=email_opt_in),
        code_challenge=code_challenge(verifier),
    )


def pending_campaign(session: SessionBase, state: str, service_key: str) -> Campaign:
    """The campaign of a pending authorization, without using it up (for a service's own sign-in page)."""
    entry = _pending(session).get(state) if state else None
    if entry is None or entry.get("service") != service_key:
        raise BadAuthorizationState(
            "This sign-in didn't start in this browser, or it expired. Please start again from the pre-save page."
        )
    campaign = Campaign.objects.select_related("release__artist").filter(pk=entry["campaign"]).first()
    if campaign is None:
        raise NotFound("This pre-save no longer exists.")
    return open_campaign(campaign, markets.normalize(entry.get("seen_country", "")))


def _completed(session: SessionBase) -> dict[str, str]:
    """The session's completed sign-ins, state → campaign slug (COMPLETED_KEY)."""
    completed = session.get(COMPLETED_KEY, {})
    return completed if isinstance(completed, dict) else {}


def _pending(session: SessionBase) -> dict[str, dict]:
    """The session's pending authorizations, expired ones dropped."""
    now = timezone.now().timestamp()
    pending = session.get(PENDING_KEY, {})
    return {
        state: entry
        for state, entry in pending.items()
        if isinstance(entry, dict) and now - entry.get("started_at", 0) <= PENDING_SECONDS
    }


# Complete --------------------------------------------------------------------------------------------------


def complete(
    session: SessionBase,
    *,
    service_key: str,
    params: Mapping[str, str],
    ip_address: str | None,
    user_agent: str,
) -> Presaved:
    """Finish the authorization the service redirected back with (`params` is the callback's query)."""
    service = enabled_service(service_key)
    entry = _take_pending(session, params.get("state", ""), service.key)
    campaign = Campaign.objects.select_related("release__artist").filter(pk=entry["campaign"]).first()
    retry_url = campaign.get_absolute_url() if campaign else ""

    error = service.callback_error(params)
    if error == "access_denied":
        raise ConsentDenied(
            # This attempt saved nothing; nothing is said of what we hold: the same account (or browser) may
            # have pre-saved another campaign.
            f"You chose Cancel on {service.label}, so nothing was saved. Changed your mind? You can pre-save again.",
            retry_url=retry_url,
        )
    if error:
        logger.warning("%s authorization failed: %s", service.label, loggable_error(error))
        raise FanFlowError(f"{service.label} couldn't complete the sign-in. Please try again.", retry_url=retry_url)
    if campaign is None or campaign.status == Campaign.Status.DRAFT:
        raise NotFound("This pre-save no longer exists.")
    open_campaign(campaign, markets.normalize(entry.get("seen_country", "")))
    code = params.get("code", "")
    if not code:
        raise BadAuthorizationState(
            f"{service.label} sent you back without a sign-in code. Please try again.",
            retry_url=retry_url,
            title="The sign-in didn't finish",
        )

    email_opt_in = bool(entry.get("email_opt_in"))
    requested = service.scopes_for(campaign, email_opt_in=email_opt_in)
    email_instead = campaign if campaign.offer_email_optin else None  # offered when the service can't take the fan
    try:
        tokens = service.exchange_code(
            code=code, redirect_uri=redirect_uri(service.key), code_verifier=entry["code_verifier"]
        )
        if not tokens.refresh_token:
            raise ServiceError(f"{service.label} gave no lasting permission.")
        profile = service.profile(tokens.access_token)
    except TokenRevoked:
        raise CodeRejected(
            "This sign-in link was already used or has expired, please try again.", retry_url=retry_url
        ) from None
    except services.AccountNotAllowed:
        raise AccountNotListed(
            f"The label's {service.label} app is still in {service.label}'s test mode, which lets in only a few "
            "listed accounts, and yours isn't one of them, so nothing was saved."
            + (" You can still get an email when it's out." if email_instead else ""),
            retry_url=retry_url,
            email_campaign=email_instead,
        ) from None
    except RateLimited:
        raise ServiceBusy(
            f"{service.label} is busy right now (lots of fans at once). Wait a minute and try again.",
            retry_url=retry_url,
        ) from None
    except ServicePaused as exc:  # the service refuses our app itself (its credentials, its owner's account)
        logger.error("%s sign-in refused the app: %s", service.label, exc.message)
        raise ServiceUnavailable(
            f"{service.label} isn't letting fans sign in to this pre-save right now, so nothing was saved. The "
            "problem is on the label's side, not yours. Try again later"
            + (", or get an email when it's out." if email_instead else "."),
            retry_url=retry_url,
            email_campaign=email_instead,
        ) from None
    except ServiceError as exc:
        logger.warning("%s sign-in failed: %s", service.label, exc.message)
        raise ServiceUnavailable(
            f"{service.label} didn't answer properly, so nothing was saved. Please try again in a moment.",
            retry_url=retry_url,
        ) from None

    if profile.email and not addresses.is_valid(profile.email):  # the service's word, not checked by it for us
        logger.warning("%s reported an email address that is not one; kept none", service.label)
        profile = replace(profile, email="")
    # The name is the fan's own words, as the service passes them on: PostgreSQL's text holds no NUL.
    profile = replace(profile, display_name=profile.display_name.replace("\x00", ""))
    with transaction.atomic():
        fan = _update_fan(service.key, profile, email_opt_in=email_opt_in)
        # Issue #4's order: the profile's country, else the one seen at sign-up. With neither none is stored, and
        # Campaign.market_for, the one reading of a market, gives the campaign's default as it is when read.
        market = markets.country(profile.country) or markets.country(entry.get("seen_country", ""))
        subscription = _pending_subscription(fan, campaign, market)
        _store_credential(subscription, tokens)
        record = ConsentRecord(
            subscription=subscription,
            campaign=campaign,
            service=service.key,
            service_user_id=profile.user_id,
            display_name=profile.display_name[:200],
            email=profile.email if email_opt_in else "",
            ip_address=ip_address or None,
            user_agent=user_agent.replace("\x00", "")[:USER_AGENT_MAX],  # PostgreSQL's text holds no NUL
            scopes=tokens.scope.split() or requested,
            wording_version=consent.WORDING_VERSION,
            # Opted in: an address we hold and may email. A ticked box without one (Apple Music shares none) is
            # not: the fan is neither mailed nor exported nor counted as opted in (the thank-you page says why).
            email_opt_in=bool(email_opt_in and profile.email),
        )
        revoke_token = record.issue_revoke_token()
        record.save()
        # The fan's latest answer to the email box is theirs: an earlier consent for this pre-save shares no more.
        revocation.stop_sharing_email(ConsentRecord.objects.filter(subscription=subscription).exclude(pk=record.pk))

    kept = list(_completed(session).items())[-(COMPLETED_KEPT - 1) :]
    session[COMPLETED_KEY] = {**dict(kept), params.get("state", ""): campaign.slug}
    _remember_thanks(
        session,
        campaign.slug,
        service.key,
        {
            "service": service.key,
            # Sealed: a copy of the session table must not hand out tokens that cancel pre-saves and lead to
            # the fans' privacy pages (the consent record keeps only the token's hash).
            "consent": record.pk,
            "sealed_revoke_token": vault.seal_text(revoke_token, aad=thanks_aad(record.pk)),
            "email_opt_in": email_opt_in,
            "email_shared": bool(email_opt_in and profile.email),
        },
    )
    return Presaved(subscription, record, revoke_token)


def _take_pending(session: SessionBase, state: str, service_key: str) -> dict:
    """Pop the pending authorization named by `state`: each can complete once."""
    if not state:
        raise BadAuthorizationState(
            "The sign-in came back without its security check. Please start again from the pre-save page."
        )
    if isinstance(slug := _completed(session).get(state), str):
        raise AlreadyCompleted(slug)
    stored = session.get(PENDING_KEY, {})
    entry = stored.get(state)
    if isinstance(entry, dict) and entry.get("service") == service_key:  # a stray callback uses nothing up
        stored.pop(state)
        # Saved now, whatever happens next (the session middleware skips saving on 5xx): one try per state.
        session[PENDING_KEY] = stored
        session.save()
    else:
        raise BadAuthorizationState(
            "This sign-in didn't start in this browser, or it was already used. "
            "Please start again from the pre-save page."
        )
    if timezone.now().timestamp() - entry.get("started_at", 0) > PENDING_SECONDS:
        raise BadAuthorizationState(
            "This sign-in took more than 10 minutes, so it expired. Please start again from the pre-save page."
        )
    return entry


def _update_fan(service_key: str, profile: Profile, *, email_opt_in: bool) -> Fan:
    """The fan of `profile`'s account, created or brought up to date. Their country is the profile's when it names
    a real country (`markets.country`: not a proxy's "XX" or a region's "EU"); a profile naming none leaves the
    one known before."""
    country = markets.country(profile.country)
    fan, created = Fan.objects.get_or_create(
        service=service_key,
        service_user_id=profile.user_id,
        defaults={
            "display_name": profile.display_name[:200],
            "email": profile.email if email_opt_in else "",
            "country": country,
        },
    )
    if not created:
        fan.display_name = profile.display_name[:200]
        if email_opt_in and profile.email:
            fan.email = profile.email
        if country:
            fan.country = country
        fan.save(update_fields=["display_name", "email", "country", "updated_at"])
    return fan


def _pending_subscription(fan: Fan, campaign: Campaign, market: str) -> Subscription:
    """The fan's one subscription to `campaign`, in `market`; a revoked or failed one is pending again."""
    subscription, created = Subscription.objects.get_or_create(fan=fan, campaign=campaign, defaults={"market": market})
    if not created:
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        subscription.market = market
        fields = ["market", "updated_at"]
        if subscription.status in (Subscription.Status.REVOKED, Subscription.Status.FAILED):
            subscription.status = Subscription.Status.PENDING
            subscription.attempts = 0
            subscription.last_error = ""
            subscription.next_attempt_at = None
            subscription.done_calls = ""  # a new authorization is a new promise: everything is done anew
            fields += ["status", "attempts", "last_error", "next_attempt_at", "done_calls"]
        subscription.save(update_fields=fields)
    return subscription


def _store_credential(subscription: Subscription, tokens: Tokens) -> None:
    """Replace the subscription's credential with the new refresh token, sealed."""
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(tokens.refresh_token or "")
    credential.save()
