"""The release-day report: when a campaign's delivery is done, the label's staff get one email with how it went
(delivered, failed, revoked, why fans were not delivered, and what Retry failed would re-queue), so nobody has to sit
in front of the console at midnight. Counts and service messages only: no fan's name, address or token.

Sent to DELIVERY_REPORT_EMAILS (none: no report), by a django-q2 task queued once, by the run or the sweeper
whose update marked the campaign done (`delivery.engine.finish_campaigns`, `REPORT_TASK`)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from delivery.engine import REPORT_TASK
from fans import release_email
from releases import analytics, retry
from releases.models import Campaign

logger = logging.getLogger(__name__)


def console_url(page: str, campaign: Campaign) -> str:
    """A full address of one of the campaign's console pages: a mail client has no site to resolve a path on."""
    return settings.PUBLIC_BASE_URL + reverse(f"admin:releases_campaign_{page}", args=[campaign.pk])


def send_delivery_report(campaign_id: int) -> str:
    """The task: mail the report of a done campaign to DELIVERY_REPORT_EMAILS."""
    campaign = Campaign.objects.select_related("release__artist").filter(pk=campaign_id).first()
    if campaign is None or not settings.DELIVERY_REPORT_EMAILS:
        return "no report to send"
    counts = analytics.kpis(campaign)
    release = campaign.release
    context = {
        "campaign": campaign,
        "release": release,
        "counts": counts,
        "total": sum(counts.values()),
        "failure_reasons": analytics.failure_reasons(campaign, limit=5),
        "retryable": retry.retryable_count(campaign, failed=counts["failed"]),
        "public_url": campaign.public_url(),
        "admin_url": console_url("change", campaign),
        "retry_failed_url": console_url("retry_failed", campaign),
    }
    total = f"{context['total']:,} {analytics.presaves(context['total'])}"
    subject = f"Delivered: {release.title} by {release.artist} — {counts['delivered']:,} of {total}"
    body = render_to_string("email/delivery_report.txt", context)
    try:
        EmailMessage(subject=subject, body=body, to=settings.DELIVERY_REPORT_EMAILS).send()
    except release_email.MAIL_SERVER_ERRORS as exc:  # tried again later, as the fans' emails are
        retry_at = release_email.retry_later(f"delivery-report-{campaign_id}", REPORT_TASK, campaign_id)
        logger.warning("Delivery report of campaign %s not sent (%s); retrying at %s",
                       campaign_id, type(exc).__name__, retry_at)  # fmt: skip
        return f"delivery report for campaign {campaign_id}: mail server failed, retry at {retry_at}"
    return f"delivery report for campaign {campaign_id} sent to {len(settings.DELIVERY_REPORT_EMAILS)} address(es)"
