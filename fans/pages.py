"""What the fans' pages show: the campaign page, the thank-you page, the revoke pages and the privacy page, as
template context."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil

from delivery.services import SERVICES
from fans import authorization, consent, inapp, privacy, revocation, smartlink
from fans.errors import NotFound
from fans.forms import EmailSignupForm
from fans.models import ConsentRecord, ReleaseEmail, Subscription
from releases.models import Campaign, SeenFrom

if TYPE_CHECKING:
    from fans.pagecache import CampaignPage


@dataclass(frozen=True)
class Countdown:
    """Time left until the release, rendered on the server; static/js/countdown.js keeps it ticking. The clock is
    read once, when it is made (for each page view), so its parts and `seconds_left` agree."""

    target: dt.datetime
    # Seconds until the release rounded up: zero is the release instant itself, never half a second before it (a
    # fan who reloads at zero gets the smart link, not the pre-save page again).
    whole_seconds: int = field(init=False)

    def __post_init__(self) -> None:
        left = max(self.target - timezone.now(), dt.timedelta(0))
        object.__setattr__(self, "whole_seconds", math.ceil(left.total_seconds()))

    @property
    def seconds_left(self) -> str:
        """Whole seconds until the release by the server's clock: countdown.js counts from it, so a phone whose
        clock is wrong still counts right."""
        return str(self.whole_seconds)

    @property
    def parts(self) -> list[tuple[str, str]]:
        """[("12", "days"), ("03", "hours"), …]: days as they are, the rest on two digits."""
        seconds = self.whole_seconds
        days, seconds = divmod(seconds, 86_400)
        hours, seconds = divmod(seconds, 3_600)
        minutes, seconds = divmod(seconds, 60)
        return [
            (str(days), "days"),
            (f"{hours:02d}", "hours"),
            (f"{minutes:02d}", "minutes"),
            (f"{seconds:02d}", "seconds"),
        ]


def campaign_context(
    page: CampaignPage,
    *,
    country: str = "",
    preferred: str = "",
    in_app: inapp.InAppBrowser | None = None,
    page_url: str = "",
    utm: dict[str, str] | None = None,
    email_form=None,
    seen: SeenFrom | None = None,
) -> dict:
    """The campaign page: before the release a pre-save page, after it a smart link (fans/smartlink.py). On a
    per-market campaign, "before" and "after" are the visitor's: their `country` is their market (`seen`: the
    campaign as seen from there, when the caller has it already)."""
    campaign, release = page.campaign, page.release
    seen = seen or campaign.seen_from(country)
    accepting, is_out, release_at = seen.accepting, seen.is_out, seen.release_at
    offered = campaign.offered_services() if accepting else []
    # In an app's own browser, a service whose sign-in can't work there gets the "open in your browser" advice.
    browser_only = [cls.label for cls in offered if in_app and not cls.signs_in_in_app]
    services = [consent.service_consent(cls(), campaign) for cls in offered if not in_app or cls.signs_in_in_app]
    release_zone = campaign.release_zone(country)
    offer_email = offer_email_signup(campaign, accepting)
    if offer_email and email_form is None:
        email_form = EmailSignupForm(consent_label=consent.email_signup_words(release))
    return {
        "campaign": campaign,
        "release": release,
        "artist": release.artist,
        "release_at": release_at,  # told in `release_zone` by the template's {% timezone %}
        "release_zone": release_zone,
        "is_out": is_out,
        "accepting": accepting,
        "countdown": Countdown(release_at) if not is_out else None,
        "services": services,
        "browser_only": browser_only,
        "listen_links": smartlink.ordered(
            smartlink.destinations(release, page.links), country=country, preferred=preferred
        )
        if is_out
        else [],
        "in_app": in_app,
        "intent_url": inapp.android_intent_url(page_url, utm) if in_app and in_app.is_android and page_url else "",
        "page_url": page_url,
        "cover_url": absolute_media_url(release.cover.url) if release.cover else "",
        "utm": sorted((utm or {}).items()),
        "utm_slot": "",
        "offer_email": offer_email,
        # Beside working pre-save buttons in an ordinary browser the form is a second choice, and says so.
        "email_heading": "Not on these? Get an email when it's out" if services and not in_app else "",
        "email_form": email_form,
        "email_opt_in_label": consent.EMAIL_OPT_IN_LABEL,
        "email_only_if_ticked": consent.EMAIL_ONLY_IF_TICKED.format(label=consent.EMAIL_OPT_IN_LABEL),
        "revoke_any_time": consent.REVOKE_ANY_TIME,
    }


def offer_email_signup(campaign: Campaign, accepting: bool) -> bool:
    """The page offers "Email me when it's out" while the campaign takes sign-ups and offers email, in every
    browser: in an app's own browser and when no service can take a pre-save it stands in for them, and elsewhere
    it serves the fan who listens on a service we can't pre-save on (YouTube Music, Amazon, Tidal: the smart
    link's)."""
    return accepting and campaign.offer_email_optin


def absolute_media_url(url: str) -> str:
    """Open Graph wants absolute image URLs: MEDIA_URL may already be one (a CDN), else our public base."""
    return url if url.startswith(("https://", "http://")) else settings.PUBLIC_BASE_URL + url


def thanks_context(session: SessionBase, page: CampaignPage) -> dict | None:
    """The thank-you page for the pre-saves this browser completed for `page`'s campaign (one per service): each with
    its privacy link and, while it is pending (before the release time or after it: the revoke link cancels it
    until it's done), its cancel link, or while one that couldn't be done keeps its permission, the link that
    withdraws it (after, how to undo what was done in the service). None when it completed
    none, or the fan has cancelled them or erased their data since (the page would say "you're in"). Each one's
    "Listen now" goes to the release on its service through the smart link's click (`listen_url`), from the
    page's links, as the click's redirect reads them."""
    campaign = page.campaign
    presaves = [p for p in map(_presaved, authorization.thanks_entries(session, campaign.slug)) if p is not None]
    if not presaves:
        return None
    found = smartlink.destinations(campaign.release, page.links)
    for presaved in presaves:
        presaved.update(email_elsewhere(presaved, presaves))
        presaved["listen_url"] = smartlink.listen_url(campaign, found, presaved["service"])
    now = timezone.now()
    release = campaign.release
    # A pending pre-save's link cancels it, whatever the clock says, as the revoke link does; one that couldn't be
    # done, while we keep its permission, withdraws that; once done or given up for good, there's nothing left.
    to_cancel = [p for p in presaves if p["status"] == Subscription.Status.PENDING or p["holds_permission"]]
    return {
        "campaign": campaign,
        "release": release,
        "artist": release.artist,
        "presaves": presaves,
        "outcome": thanks_outcome([p["status"] for p in presaves]),
        "to_cancel": to_cancel,
        "pending": [p for p in to_cancel if not p["holds_permission"]],
        "finished": [p for p in presaves if p not in to_cancel],
        "privacy_link_lasts": timeuntil(now + dt.timedelta(seconds=settings.PRIVACY_LINK_MAX_AGE), now),
    }


def email_elsewhere(presaved: dict, presaves: list[dict]) -> dict:
    """For a pre-save that asked for the email on a service that shared no address (Apple Music), the page's other
    pre-saves whose address the email was sent to (`email_sent_there`) or is still to go to (`email_to_come_there`),
    by service (`emailed_by`): one email an address, so the fan gets it there, and the page must not say none can
    be sent. `emailed_by` is also set while neither (the release out, the email not sent yet): the page then says
    nothing of it, as it says nothing on the other service's line."""
    if not presaved["email_opt_in"] or presaved["email_shared"]:
        return {"emailed_by": [], "email_sent_there": False, "email_to_come_there": False}
    others = [p for p in presaves if p is not presaved and p["email_opt_in"] and p["email_shared"]]
    sent = [p["service_label"] for p in others if p["email_sent"]]
    to_come = [p["service_label"] for p in others if p["email_to_come"]]
    return {
        "emailed_by": sent or to_come or [p["service_label"] for p in others],
        "email_sent_there": bool(sent),
        "email_to_come_there": bool(to_come) and not sent,
    }


NOT_DONE = (Subscription.Status.FAILED, Subscription.Status.REVOKED)  # given up, or the permission withdrawn


def thanks_outcome(statuses: list[str]) -> str:
    """What the thank-you page's title, badge and heading say of the fan's pre-saves, by their statuses: "done"
    (all delivered), "not_done" (none could be: failed, or the permission withdrawn in the service), "partly"
    (some could not be) or "in" (still to come, or some of them done)."""
    not_done = [status in NOT_DONE for status in statuses]
    if all(not_done):
        return "not_done"
    if any(not_done):
        return "partly"
    if all(status == Subscription.Status.DELIVERED for status in statuses):
        return "done"
    return "in"


def _presaved(presaved: dict) -> dict | None:
    """One THANKS_KEY entry as the thank-you page tells it; None once it no longer stands (its revoke token
    won't open, or it was cancelled or erased)."""
    if presaved.get("service") not in SERVICES:
        return None
    revoke_token = authorization.thanks_revoke_token(presaved)
    if not revoke_token:
        return None
    try:
        consent_record = revocation.find_consent(revoke_token)
    except NotFound:
        return None
    if consent_record.revoked_at is not None:  # cancelled, or erased (when its pre-save went too)
        return None
    campaign = consent_record.campaign
    subscription = consent_record.subscription  # a consent not revoked has its pre-save
    market = subscription.delivery_market()
    service = SERVICES[presaved["service"]]()
    actions = service.actions(campaign)  # what the consent said, and what release day will do
    is_out = campaign.is_out_in(market)
    # The words follow the delivery, whatever the clock says (staff's Deliver now may deliver before the release
    # time): still to come or being done, done, or given up (failed, or the permission withdrawn in the service:
    # revoked there, not cancelled here, which ends the page above).
    status = subscription.status
    not_done = status in NOT_DONE
    # Given up, only what a try did of it (nothing, mostly).
    undo = undo_so_far(subscription, service) if not_done else undo_words(subscription, service)
    return {
        "release_at": campaign.firing_time(market),  # the fan's, told in `release_zone`
        "is_out": is_out,  # a fan back after release day reads "it's out", not "we'll save"
        # … unless the engine waits, or gave up waiting (`gave_up_in`: where), for it to come out on the service in
        # the fan's market: not out there for them.
        "out_there": is_out and not (waits_in_market(subscription) or gave_up_in_market(subscription)),
        "gave_up_in": market_words(subscription) if gave_up_in_market(subscription) else "",
        "status": status,
        "delivered": status == Subscription.Status.DELIVERED,
        "done": done_words(subscription, service) if status == Subscription.Status.DELIVERED else [],
        "not_done": not_done,
        "withdrawn": status == Subscription.Status.REVOKED,
        # Couldn't be done, its permission kept for Retry failed: the revoke link withdraws it (`cancel_effects`).
        "holds_permission": status == Subscription.Status.FAILED and revocation.holds_permission(subscription),
        # Past the release time, what is being done: the privacy page's words (`pending_words`). A pending pre-save
        # the page tells "is out" always has them: `is_out` and `under_way` read the same firing time, the clock
        # only going forward between them.
        "under_way": under_way(subscription, service.label) if status == Subscription.Status.PENDING else "",
        "undo": undo,
        "release_zone": campaign.release_zone(market),
        "service": service.key,
        "service_label": service.label,
        "saves": "save" in actions,
        "follows": "follow" in actions,
        "playlist": campaign.playlist_name if "playlist" in actions else "",
        "actions": service.action_descriptions(campaign),  # in the consent's own words
        "revoke_token": revoke_token,
        "email_opt_in": presaved.get("email_opt_in", False),
        "privacy_url": privacy.link_for_fan(subscription.fan),
        "email_shared": presaved.get("email_shared", False),
        # Promised only before the release, while still to come (the fan may have stopped it); once it's out, the
        # page says it was sent when it was, and nothing until then.
        "email_to_come": not is_out and privacy.email_to_come(subscription),
        "email_sent": is_out and privacy.email_sent_at(subscription) is not None,
    }


def privacy_link_form_url() -> str:
    """The privacy notice's form that emails a fan a fresh privacy link."""
    return reverse("fans:privacy_notice") + "#privacy-link"


def revoke_context(
    consent_record: ConsentRecord, *, token: str = "", cancelled: bool = False, failed: bool = False
) -> dict:
    """The one-click revoke link's pages (the thank-you page's, an email's), in the privacy page's words and
    partials: a pre-save release day has done has nothing left to cancel (how to undo it in the service, and
    the way to the privacy page's "Stop the email" while its email is still to come: the form that emails a
    privacy link, as the link gives one only while its pre-save is to come), nor has one whose permission was
    withdrawn in the service (`withdrawn`: it couldn't be done, and says why); a link of a pre-save
    the fan cancelled and then made again (`again`: the later consent) says so and leads to the privacy page's
    question for the pre-save that is on; otherwise what cancelling will do (`token`: the question's form posts
    to it) or, afterwards, what it did (`cancelled`: this request cancelled it; `failed`: one that couldn't be
    done)."""
    campaign = consent_record.campaign
    # A consent its link finds has its pre-save: erasure, the only way one loses it, makes the link lead nowhere
    # (revocation.find_consent; revocation.revoke under its lock).
    subscription = consent_record.subscription
    service = SERVICES[subscription.fan.service]()
    delivered = subscription.status == Subscription.Status.DELIVERED
    # The revoke link never expires: it leads to a fresh privacy link (all about the fan, erase included) only
    # while its pre-save is still to come, and in the answer of the cancel it made (a fan who gave no address
    # has no other way back to what we still hold: the consent record); after, to the privacy notice's form
    # that emails the fan one.
    to_come = subscription.status in revocation.ACTIVE
    privacy_token = privacy.token_for_fan(subscription.fan) if to_come or cancelled else ""
    privacy_url = reverse("fans:privacy", args=[privacy_token]) if privacy_token else privacy_link_form_url()
    again = revocation.presaved_again(consent_record)
    withdrawn = revocation.withdrawn_in_service(consent_record)
    said = delivered or withdrawn or token or again  # the page says it in its own words, or asks
    what_happened = "" if said else cancelled_words(subscription, cancelled=cancelled, failed=failed)
    return {
        "consent": consent_record,
        "campaign": campaign,
        "release": campaign.release,
        "artist": campaign.release.artist,
        "service_label": consent_record.get_service_display(),
        "subscription": subscription,
        "token": token,
        "cancelled": cancelled,
        "delivered": delivered,
        "withdrawn": withdrawn,
        "again": again,
        **cancel_effects(subscription, service),
        "undo": undo_words(subscription, service) if delivered else [],
        "done_when": done_when(subscription) if delivered else "",
        "email_to_come": privacy.email_to_come(subscription),
        "privacy_token": privacy_token,
        "privacy_url": privacy_url,
        "what_happened": what_happened,
    }


def privacy_context(subject: privacy.Subject, token: str) -> dict:
    subscriptions = list(privacy.subscriptions(subject).select_related("fan"))
    for subscription in subscriptions:  # a fan may have pre-saved one release on two services
        service = SERVICES[subscription.fan.service]()
        subscription.service_label = service.label
        subscription.can_cancel = subscription.status in revocation.ACTIVE
        status = Subscription.Status(subscription.status)
        subscription.undo = undo_words(subscription, service) if status == status.DELIVERED else []
        subscription.done_when = done_when(subscription) if status == status.DELIVERED else ""
        subscription.withdrawn = revocation.subscription_withdrawn_in_service(subscription)
        subscription.pending = pending_words(subscription, service.label) if status == status.PENDING else ""
        # The release-day email goes to every consent still sharing the fan's address: a fan's cancel withdraws
        # them, the permission withdrawn in the service doesn't (fans/release_email.py).
        subscription.email_to_come = privacy.email_to_come(subscription)
        # One email an address: "Stop the email" stops it for whatever else asks for it there too.
        elsewhere = privacy.email_asked_elsewhere(subscription) if subscription.email_to_come else []
        subscription.still_emailed = still_emailed(elsewhere)
        subscription.stop_email_stops = stop_email_stops(elsewhere)
    consents = list(privacy.consents(subject))
    for consent_record in consents:
        consent_record.words = privacy.consent_words(consent_record)
        consent_record.stopped = privacy.stopped_email(consent_record)
    signups = list(privacy.email_signups(subject))
    for signup in signups:
        signup.words = consent.email_signup_words(signup.campaign.release)
    return {
        "subject": subject,
        "fan": subject.fan,
        "service_label": subject.fan.get_service_display() if subject.fan else "",
        "fan_email": fan_email_state(subject.fan, consents) if subject.fan else None,
        "held_email": held_email(subject, consents),
        # The markets the pre-saves are delivered in: one without a market of its own follows the campaign's default.
        "markets": sorted({subscription.delivery_market() for subscription in subscriptions}),
        "subscriptions": subscriptions,
        "consents": consents,
        "email_signups": signups,
        "token": token,
    }


def cancel_effects(subscription: Subscription, service) -> dict:
    """What templates/fans/includes/cancel_effects.html tells of cancelling this pre-save, asked on the privacy
    page and by the revoke link: what it still stops, what is being done past the release time, what was done and
    stays; for one that couldn't be done (`failed`), that cancelling only withdraws the permission, deleting it
    while we keep it (`holds_permission`)."""
    status = subscription.status
    failed = status == Subscription.Status.FAILED
    return {
        "cancel_words": cancel_words(subscription, service),
        "undo_so_far": undo_so_far(subscription, service),
        "under_way": under_way(subscription, service.label) if status == Subscription.Status.PENDING else "",
        "failed": failed,
        "holds_permission": failed and revocation.holds_permission(subscription),
        "still_emailed": still_emailed(privacy.email_asked_elsewhere(subscription)),
    }


def still_emailed(elsewhere: list[str]) -> str:
    """Why cancelling a pre-save doesn't stop its release-day email, as "You'll still get the email …: " goes on:
    "your pre-save on Deezer asks for it too", from what else asks for it (`privacy.email_asked_elsewhere`); ""
    when nothing does, and cancelling stops it."""
    if not elsewhere:
        return ""
    return f"{' and '.join(elsewhere)} {'asks' if len(elsewhere) == 1 else 'ask'} for it too"


def cancel_words(subscription: Subscription, service) -> SafeString:
    """What cancelling still stops, as "We won't …" goes on: the actions the pre-save would take that the engine
    has not done yet (an earlier try may have done some: `done_calls`), "save X by Y to your Spotify library,
    follow Y on Spotify or add X to …". Empty when there is none. What was done stays: `undo_so_far`. A playlist
    a try made but didn't fill (`Service.playlist_left`) is in the fan's account already: cancelling stops adding
    to it, "add X to the empty playlist …" (the rest of X, to one partly filled), as `undo_words` names it."""
    campaign, release = subscription.campaign, subscription.campaign.release
    done = subscription.done_calls.split()
    left = service.playlist_left(done)
    words = {
        "save": format_html(
            "save <strong>{}</strong> by {} to your {} {}",
            release.title,
            release.artist.name,
            service.label,
            service.library_word,
        ),
        "follow": format_html("follow {} on {}", release.artist.name, service.label),
        "playlist": format_html(
            "add {}<strong>{}</strong> to the {} playlist “{}” in your {} account",
            "" if left == "empty" else "the rest of ",
            release.title,
            left,
            campaign.playlist_name,
            service.label,
        )
        if left
        else format_html(
            "add <strong>{}</strong> to a new private playlist “{}” in your {} account",
            release.title,
            campaign.playlist_name,
            service.label,
        ),
    }
    phrases = [(words[action],) for action in service.actions(campaign) if action not in done]
    if len(phrases) < 2:
        return format_html_join("", "{}", phrases)
    return format_html("{} or {}", format_html_join(", ", "{}", phrases[:-1]), phrases[-1][0])


def done_words(subscription: Subscription, service) -> list[str]:
    """What release day did for this pre-save, as "we've …" goes on: "saved X to your Spotify library", …"""
    campaign, release = subscription.campaign, subscription.campaign.release
    return _for_actions_done(
        subscription,
        service,
        save=f"saved {release.title} to your {service.label} {service.library_word}",
        follow=f"followed {release.artist.name} on {service.label}",
        playlist=f"added {release.title} to the private playlist “{campaign.playlist_name}” in your "
        f"{service.label} account",
    )


def _for_actions_done(subscription: Subscription, service, **words: str) -> list[str]:
    """`words` (by library action: save, follow, playlist) for the actions done on this pre-save, in that order:
    those the engine recorded (`done_calls`), or all the consent named where it recorded none."""
    done = subscription.done_calls.split() or service.actions(subscription.campaign)
    return [words[action] for action in words if action in done]


def done_when(subscription: Subscription) -> str:
    """When a delivered pre-save was done, as "… was done" goes on: " on 4 December 2026", and ", before its
    release" when staff's Deliver now did it before the fan's release time (never "on release day" then)."""
    delivered_at = subscription.delivered_at
    if delivered_at is None:
        return ""
    words = f" on {date_format(timezone.localtime(delivered_at), 'j F Y')}"
    if delivered_at < subscription.campaign.firing_time(subscription.delivery_market()):
        words += ", before its release"
    return words


def pending_words(subscription: Subscription, service_label: str) -> str:
    """What a pending pre-save waits for, as "…, on Spotify:" goes on: release day until the fan's release time,
    then what the engine is doing with it (`under_way`)."""
    return under_way(subscription, service_label) or "waiting for release day"


def under_way(subscription: Subscription, service_label: str) -> str:
    """What the engine is doing with a pending pre-save after the fan's release time, as "…, on Spotify:" or
    "Your pre-save is …" go on: doing it (its run is due then), trying again after a try that didn't go through
    (`next_attempt_at` ahead, `last_error` its reason), or waiting for the release to come out on the service in
    the fan's market or to be found there (the engine's "Waiting: …" in `last_error`). "" before that time."""
    campaign = subscription.campaign
    now = timezone.now()
    if now < campaign.firing_time(subscription.delivery_market()):
        return ""
    error = subscription.last_error
    if waits_in_market(subscription):
        return f"waiting for the release to come out on {service_label} in {market_words(subscription)}"
    if error.startswith("Waiting:"):  # no identifier to find it by yet, or its UPC or ISRC found nothing
        return f"waiting for the release to be found on {service_label}"
    retrying = subscription.next_attempt_at is not None and subscription.next_attempt_at > now
    if retrying and error and not error.startswith("Waiting for the release time"):  # its own wait, now over
        return "being done: a try didn't go through, we'll try again"
    return "being done now"


def waits_in_market(subscription: Subscription) -> bool:
    """Whether the engine waits for the release to come out on the fan's service in their market (its "Waiting: the
    release is not available …"): past the release time, it isn't out there for that fan."""
    pending = subscription.status == Subscription.Status.PENDING
    return pending and subscription.last_error.startswith("Waiting: the release is not available")


def gave_up_in_market(subscription: Subscription) -> bool:
    """`waits_in_market`'s counterpart once the engine stopped waiting: it gave up on the pre-save, the release
    still not out on the fan's service in their market DELIVERY_AVAILABILITY_WAIT_HOURS after their release time
    (its "Gave up waiting: the release was still not available …"). It wasn't out there for that fan."""
    failed = subscription.status == Subscription.Status.FAILED
    return failed and subscription.last_error.startswith("Gave up waiting: the release was still not available")


def market_words(subscription: Subscription) -> str:
    """The market the engine waits for the release in, as "… on Spotify in " goes on: "your market" (the pre-save's,
    or for one without, the fan's country), or the one it read instead of the fan's (unknown: the campaign's
    default)."""
    market = subscription.delivery_market()
    return "your market" if market in (subscription.market, subscription.fan.country) else market


def undo_words(subscription: Subscription, service) -> list[str]:
    """How the fan undoes in the service what release day did for this pre-save: we can't from here. A playlist a
    try made but didn't fill (`Service.playlist_left`) stays in the fan's account too: "delete the empty
    playlist …"."""
    campaign, release = subscription.campaign, subscription.campaign.release
    words = _for_actions_done(
        subscription,
        service,
        save=f"remove {release.title} from your {service.label} {service.library_word}",
        follow=f"unfollow {release.artist.name} on {service.label}",
        playlist=f"delete the playlist “{campaign.playlist_name}” in your {service.label} account",
    )
    left = service.playlist_left(subscription.done_calls.split())
    if left:
        words.append(f"delete the {left} playlist “{campaign.playlist_name}” in your {service.label} account")
    return words


def undo_so_far(subscription: Subscription, service) -> list[str]:
    """How the fan undoes what the engine has done so far of a pre-save it has not done whole (pending, failed or
    cancelled after a try did part of it: `done_calls`): [] when it recorded nothing done."""
    return undo_words(subscription, service) if subscription.done_calls else []


@dataclass(frozen=True)
class FanEmail:
    """Why the privacy page shows no address for a fan: `kind` is "withdrawn" (with a cancelled pre-save),
    "stopped" (the email's unsubscribe, or the privacy page's "Stop the email"), "again" (the fan pre-saved again
    without ticking the box), "not_shared" (the fan asked and the service gave no address, or it shares none) or
    "never" (the fan never ticked the box); `at` is when, if known."""

    kind: str
    at: dt.datetime | None = None


def fan_email_state(fan, consents: list[ConsentRecord]) -> FanEmail | None:
    """None while the fan's address is kept (a consent shares it); else why there is none, the latest reason.
    `consents` carry `stopped` (privacy.stopped_email), as privacy_context sets it."""
    if fan.email:
        return None
    reasons = [FanEmail("withdrawn", c.revoked_at) for c in consents if c.email_opt_in and c.revoked_at]
    mailed = Q(pk__in=[])  # none, without a consent
    for c in consents:
        mailed |= privacy.mailed_to(c)
    stopped = ReleaseEmail.objects.filter(mailed, unsubscribed_at__isnull=False)
    reasons += [FanEmail("stopped", at) for at in stopped.values_list("unsubscribed_at", flat=True)]
    reasons += [FanEmail("again", c.stopped.at) for c in consents if c.stopped.again and not c.stopped.asked_again]
    if reasons:
        return max(reasons, key=lambda reason: reason.at)
    if any(c.email_opt_in or privacy.got_no_address(c) for c in consents):
        return FanEmail("not_shared")
    return FanEmail("never")


@dataclass(frozen=True)
class HeldEmail:
    """Where we still hold addresses of the subject once the fan's account no longer uses one (the export lists
    them there too): `in_consents`, the records of what was agreed to (their proof), `in_release_emails`, the
    release-day email's row (sent or not, opened, clicked, unsubscribed: "Stop the email" makes one). Both are
    kept until the subject erases them: fans.retention forgets neither."""

    addresses: list[str]
    in_consents: bool
    in_release_emails: bool


def held_email(subject: privacy.Subject, consents: list[ConsentRecord]) -> HeldEmail | None:
    in_consents = {c.email.lower() for c in consents if c.email}
    in_emails = {address.lower() for address in privacy.release_emails(subject).values_list("email", flat=True)}
    if not in_consents | in_emails:
        return None
    return HeldEmail(sorted(in_consents | in_emails), bool(in_consents), bool(in_emails))


def cancelled_words(subscription: Subscription, *, cancelled: bool, failed: bool = False) -> str:
    """What the privacy page says after its "Cancel" button (and the revoke link's): `failed`, the pre-save this
    cancelled couldn't be done, and cancelling withdrew only its permission and consents. The release-day email is
    spoken of only to a fan who asked for it: still to come for another pre-save or sign-up, sent already, or
    not coming now."""
    release, label = subscription.campaign.release, SERVICES[subscription.fan.service].label
    if subscription.status == Subscription.Status.DELIVERED:
        undo = " and ".join(undo_words(subscription, SERVICES[subscription.fan.service]()))
        how = f": to undo it, {undo}." if undo else "."
        return f"{release.title} was already done{done_when(subscription)}, so there was nothing to cancel{how}"
    if revocation.subscription_withdrawn_in_service(subscription):
        return (
            f"Your pre-save of {release.title} on {label} couldn't be done: the permission you gave us was withdrawn "
            f"in your {label} account, so there was nothing to cancel."
        )
    if not cancelled:
        return f"Your pre-save of {release.title} on {label} was already cancelled: there's nothing more to do."
    # Time-neutral, as under_way's states are: cancelled before its release time or while it was being done.
    undo = " and ".join(undo_so_far(subscription, SERVICES[subscription.fan.service]()))
    undone = f" What was done stays: to undo it, {undo}." if undo else ""
    # One email an address: another pre-save or a sign-up of that address may still ask for it.
    why = still_emailed(privacy.email_asked_elsewhere(subscription))
    sent_at = privacy.email_sent_at(subscription)  # sent already: nothing to promise of the future
    # Only a fan who asked for the email is told it won't come (cancelling keeps what the consents said).
    stops_email = not why and not sent_at and bool(privacy.email_asked_at(subscription))
    if failed:
        withdrawn = "we've withdrawn the permission you gave us, so it can't be tried again"
        said = f"Your pre-save of {release.title} on {label}, which couldn't be done, is cancelled: {withdrawn}"
    else:
        rest = "the rest of it" if undo else "it"
        said = f"Your pre-save of {release.title} on {label} is cancelled: {rest} won't be done"
        and_ = "," if stops_email else ", and"
        said += f"{and_} we've deleted the permission you gave us"
    if why:
        email = f". We'll still email you when it's out: {why}."
    elif sent_at:
        email = f". {already_sent_words(sent_at)}"
    elif stops_email:
        email = ", and we won't email you about it."
    else:
        email = "."
    return f"{said}{email}{undone}"


def already_sent_words(sent_at: dt.datetime, about: str = "") -> str:
    """What the cancel and "Stop the email" say once the release-day email the pre-save asked for went
    (privacy.email_sent_at): `about`, the release's title when the words don't name it already."""
    sent_on = date_format(timezone.localtime(sent_at), "j F Y")
    about = f" about {about}" if about else ""
    return f"The email you asked for{about} was already sent on {sent_on}: nothing more will come."


def stop_email_stops(elsewhere: list[str]) -> str:
    """What the privacy page's "Stop the email" stops when something else asks for the address's one release-day
    email (`elsewhere`: privacy.email_asked_elsewhere), as "“Stop the email” stops it for " goes on: "this pre-save
    and your pre-save on Deezer"; "" when nothing else does (it stops only this pre-save's)."""
    if not elsewhere:
        return ""
    stops = ["this pre-save", *elsewhere]
    return f"{', '.join(stops[:-1])} and {stops[-1]}"


def stopped_email_words(subscription: Subscription, elsewhere: list[str]) -> str:
    """What the privacy page says after "Stop the email": `elsewhere`, what else asked for the address's one email
    before it stopped (privacy.stop_email), stopped with it. Once the email went (from a page read before, or sent by
    a run meanwhile; also when its unsubscribe link was used since), when it went: there was nothing left to stop,
    though the stop is recorded (the address is not shared any more). Once the release is out for the fan (their
    market's release time) and none went (refused, no run left, or one still to come, stopped now): that none came
    and none will, where "when it's out" would speak of a time gone by."""
    title = subscription.campaign.release.title
    sent_at = privacy.email_sent_at(subscription)
    if sent_at:
        return already_sent_words(sent_at, about=title)
    if timezone.now() < subscription.campaign.firing_time(subscription.market):
        said = f"We won't email you about {title}: you'll get no email when it's out."
    else:
        said = f"We won't email you about {title}: you got no email about it, and you'll get none."
    stops = stop_email_stops(elsewhere)
    return f"{said} That stops it for {stops}: it's one email to your address." if stops else said


def privacy_cancel_context(subscription: Subscription, token: str) -> dict:
    """The privacy page's "Cancel this pre-save?" question."""
    service = SERVICES[subscription.fan.service]()
    release = subscription.campaign.release
    return {
        "subscription": subscription,
        "campaign": subscription.campaign,
        "release": release,
        "artist": release.artist,
        "service_label": service.label,
        **cancel_effects(subscription, service),
        "undo": undo_words(subscription, service),
        "done_when": done_when(subscription),
        "withdrawn": revocation.subscription_withdrawn_in_service(subscription),
        "cancelled_at": subscription.consents.aggregate(at=Max("revoked_at"))["at"],
        "email_to_come": privacy.email_to_come(subscription),
        "token": token,
        "privacy_token": token,
    }
