"""Label staff's preview of a draft campaign at its public address (the console's "View on site").

A draft is no page for fans: fans.pagecache never loads one, and every fan-facing view answers 404 for it.
Staff who may view campaigns in the console see it instead as fans will once it is live, under a banner, with
the pre-save and email buttons switched off (their endpoints 404 for a draft in any case). A preview is read
from the database at each request and never goes near the page cache, the funnel counts or a search engine.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from fans.pagecache import CampaignPage
from releases.models import Campaign, ReleaseLink, SeenFrom

PERMISSION = "releases.view_campaign"


def may_preview(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_active and user.is_staff and user.has_perm(PERMISSION)


def draft_page(slug: str) -> CampaignPage | None:
    campaign = (
        Campaign.objects.select_related("release__artist").filter(slug=slug, status=Campaign.Status.DRAFT).first()
    )
    if campaign is None:
        return None
    links = list(ReleaseLink.objects.filter(release_id=campaign.release_id))
    return CampaignPage(campaign, links, stamp=secrets.token_hex(8))


def seen_once_live(campaign: Campaign, country: str) -> SeenFrom:
    """The draft as fans in `country` will see it once it is live: taking pre-saves until it is out there."""
    seen = campaign.seen_from(country)
    return SeenFrom(seen.release_at, seen.is_out, accepting=not seen.is_out)
