"""What the fans' pages show: the campaign page, the thank-you page and the revoke pages, as template context."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone

from delivery.services import SERVICES, enabled_services
from fans import consent
from fans.authorization import THANKS_KEY
from fans.models import ConsentRecord
from releases.models import Campaign, Release


@dataclass(frozen=True)
class Countdown:
    """Time left until the release, rendered on the server; static/js/countdown.js keeps it ticking."""

    target: dt.datetime

    @property
    def remaining(self) -> dt.timedelta:
        return max(self.target - timezone.now(), dt.timedelta(0))

    @property
    def parts(self) -> list[tuple[int, str]]:
        seconds = int(self.remaining.total_seconds())
        days, seconds = divmod(seconds, 86_400)
        hours, seconds = divmod(seconds, 3_600)
        minutes, seconds = divmod(seconds, 60)
        return [(days, "days"), (hours, "hours"), (minutes, "minutes"), (seconds, "seconds")]


@dataclass(frozen=True)
class ListenLink:
    key: str
    label: str
    url: str


def local_release_time(release: Release) -> dt.datetime:
    return release.release_at.astimezone(zoneinfo.ZoneInfo(release.timezone))


def listen_links(release: Release) -> list[ListenLink]:
    links = []
    for cls in enabled_services():
        url = cls().listen_url(release)
        if url:
            links.append(ListenLink(cls.key, cls.label, url))
    return links


def campaign_context(campaign: Campaign) -> dict:
    release = campaign.release
    accepting = campaign.accepts_presaves
    services = [consent.service_consent(cls(), campaign) for cls in campaign.offered_services()] if accepting else []
    return {
        "campaign": campaign,
        "release": release,
        "artist": release.artist,
        "release_local": local_release_time(release),
        "is_out": release.is_out,
        "accepting": accepting,
        "countdown": Countdown(release.release_at) if not release.is_out else None,
        "services": services,
        "listen_links": listen_links(release) if release.is_out else [],
        "email_opt_in_label": consent.EMAIL_OPT_IN_LABEL,
        "email_only_if_ticked": consent.EMAIL_ONLY_IF_TICKED.format(label=consent.EMAIL_OPT_IN_LABEL),
        "revoke_any_time": consent.REVOKE_ANY_TIME,
    }


def thanks_context(session: SessionBase, campaign: Campaign) -> dict | None:
    """The thank-you page for the pre-save this browser just completed; None when it completed none."""
    presaved = session.get(THANKS_KEY, {}).get(campaign.slug)
    if not presaved or presaved.get("service") not in SERVICES:
        return None
    release = campaign.release
    return {
        "campaign": campaign,
        "release": release,
        "artist": release.artist,
        "release_local": local_release_time(release),
        "service_label": SERVICES[presaved["service"]].label,
        "revoke_token": presaved["revoke_token"],
        "email_opt_in": presaved.get("email_opt_in", False),
        "email_shared": presaved.get("email_shared", False),
    }


def revoke_context(consent_record: ConsentRecord, **extra) -> dict:
    campaign = consent_record.campaign
    subscription = consent_record.subscription
    service = SERVICES.get(consent_record.service)
    return {
        "consent": consent_record,
        "campaign": campaign,
        "release": campaign.release,
        "artist": campaign.release.artist,
        "service_label": service.label if service else consent_record.service,
        "subscription": subscription,
        **extra,
    }
