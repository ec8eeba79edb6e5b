"""Fans' authorizations that run out before the release: what the campaign page warns the label's staff of.

A service whose authorizations last a limited time (`Service.authorization_lifetime`: Spotify's six months)
can't deliver a pre-save given longer than that before the release. Per market, the release is out everywhere
only at the last market's time (`Campaign.last_firing_time`): that is the time an authorization must reach.
"""

from __future__ import annotations

import functools
import operator

from django.db.models import Q
from django.utils import timezone

from delivery.services import SERVICES, enabled_services
from fans.models import Subscription
from releases.models import Campaign


def release_too_far_out(campaign: Campaign) -> list[str]:
    """Warnings for each enabled service whose authorizations expire before the release comes out (per
    market, in the last market)."""
    away = campaign.last_firing_time() - timezone.now()
    warnings = []
    for service in enabled_services():
        lifetime = service.authorization_lifetime
        if lifetime is not None and away > lifetime:
            warnings.append(
                f"Fans who pre-save now will have to authorize again: {service.label} authorizations expire "
                f"{lifetime.days} days after the fan gives them, and the release is "
                f"{away.days} days away. Open the campaign later, or ask fans to come back closer to the release."
            )
    return warnings


def at_risk_count(campaign: Campaign) -> int:
    """Pending subscriptions whose authorization expires (by its service's lifetime) before the release (per
    market, before the last market's time: a day's margin for the markets that come earlier)."""
    out_everywhere = campaign.last_firing_time()
    expiring = [
        Q(fan__service=key, credential__authorized_at__lt=out_everywhere - service.authorization_lifetime)
        for key, service in SERVICES.items()
        if service.authorization_lifetime is not None
    ]
    if not expiring:
        return 0
    pending = campaign.subscriptions.filter(status=Subscription.Status.PENDING)
    return pending.filter(functools.reduce(operator.or_, expiring)).count()
