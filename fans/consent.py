"""What a fan agrees to when pre-saving, in the words the campaign page shows, and the version of those words.

Every ConsentRecord stores WORDING_VERSION: change any wording here, in a service's action or scope descriptions
(delivery/services/<service>.py) or in templates/fans/campaign.html, and bump it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from delivery.services import Service

if TYPE_CHECKING:
    from releases.models import Campaign, Release

# v2: the email-only sign-up (EMAIL_SIGNUP_CONSENT); v3: Deezer and Apple Music; v4: WHAT_WE_KEEP names the
# fan's country and the consent's IP address and browser, which fans.authorization has always kept, and both
# email consents say that the release-day email notes its opens and clicks (fans/release_email.py); v5: each
# service's list names only what it will do for the campaign (Service.actions): no save on a campaign that only
# follows, and Deezer's follow only where the campaign offers it; v6: a service that shares no email address
# (Apple Music) says the email box does nothing with it (NO_EMAIL_SHARED); v7: Deezer's offline_access words
# keep the permission until release day's work is done (delivery.engine deletes the token then), not until the
# fan takes it back, and WHAT_WE_KEEP says so for every service; v8: REVOKE_ANY_TIME no longer says our emails
# carry a cancel link (a pre-saving fan gets none before release day), and names the service's own settings;
# v9: a campaign may add the release to a private playlist it names, made in the fan's account (Spotify only: its
# list names the playlist and asks playlist-modify-private, the other services' lists don't change); v10: Spotify's
# list names what every authorization shows us (the fan's name and account id, as Deezer's does) and how Spotify's
# own screen words the permissions, wider than our actions (SCREEN_NOTE)
WORDING_VERSION = "2026-11-v10"

EMAIL_OPT_IN_LABEL = "Also email me when it drops"
EMAIL_ONLY_IF_TICKED = "Only if you tick “{label}”:"
REVOKE_ANY_TIME = (
    "You can take this back any time: the thank-you page gives you a link that cancels the pre-save and deletes "
    "the permission we hold (keep it), or remove our app in your streaming account's settings."
)
WHAT_WE_KEEP = (
    "We keep {identity}{email}, your country, a record of what you agreed to and when (with your "
    "IP address and browser details, as proof), and the permission itself, locked with encryption, until release "
    "day's work is done. Nothing else from your account."
)
EMAIL_SIGNUP_CONSENT = (
    "Email me once when {title} by {artist} is out, noting whether it is opened and its links clicked. Use my "
    "address for nothing else; every email has a link to stop and to erase it."
)
NO_EMAIL_SHARED = (
    "{label} doesn't share your email address with us, so ticking “{box}” gets you no email when you pre-save "
    "with {label}."
)
SCREEN_NOTE = "{label}'s own screen words these permissions more broadly ({words}): we use them only as listed here."
WHAT_WE_KEEP_EMAIL = (
    " (and your email address, if you tick the box, with whether our email to it is opened and its links clicked)"
)


@dataclass(frozen=True)
class ServiceConsent:
    """What pre-saving with one service allows, for one campaign."""

    key: str
    label: str
    always: list[str]  # what the fan allows in any case
    with_email: list[str]  # what ticking the email box adds
    no_email: str  # where the campaign offers the box and this service shares no address: that the box does nothing
    what_we_keep: str
    screen_note: str = ""  # how the service's own screen words the permissions asked for, where it is wider


def service_consent(service: Service, campaign: Campaign) -> ServiceConsent:
    base = service.scopes_for(campaign, email_opt_in=False)
    extra = email_scopes(service, campaign) if campaign.offer_email_optin else []
    return ServiceConsent(
        key=service.key,
        label=service.label,
        always=[words for words in [service.identity_words] if words]
        + service.scope_descriptions(base)
        + service.action_descriptions(campaign),
        with_email=service.scope_descriptions(extra),
        no_email=NO_EMAIL_SHARED.format(label=service.label, box=EMAIL_OPT_IN_LABEL)
        if campaign.offer_email_optin and not extra
        else "",
        what_we_keep=WHAT_WE_KEEP.format(
            identity=service.identity_kept.format(label=service.label), email=WHAT_WE_KEEP_EMAIL if extra else ""
        ),
        screen_note=screen_note(service, base),
    )


def email_scopes(service: Service, campaign: Campaign) -> list[str]:
    """The scopes ticking the email box adds to `service`'s authorization for `campaign`."""
    base = service.scopes_for(campaign, email_opt_in=False)
    return [scope for scope in service.scopes_for(campaign, email_opt_in=True) if scope not in base]


def email_signup_words(release: Release) -> str:
    """The email-only sign-up's consent sentence for `release`."""
    return EMAIL_SIGNUP_CONSENT.format(title=release.title, artist=release.artist.name)


def screen_note(service: Service, scopes: list[str]) -> str:
    """How the service's own consent screen words `scopes`, where it words them (`Service.screen_words`)."""
    words = [f"“{service.screen_words[scope]}”" for scope in scopes if scope in service.screen_words]
    return SCREEN_NOTE.format(label=service.label, words=", ".join(words)) if words else ""
