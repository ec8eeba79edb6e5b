"""How long personal data is kept once it has served, and the daily task that forgets what is past its time.

`forget_expired` (django-q2 Schedule "fans-retention", migration fans/0016) runs every day:

- email sign-ups whose confirmation link expired unused (fans.signups.forget_unconfirmed);
- the IP address and browser details kept with a consent, as its proof, RETENTION_CONSENT_NETWORK_DAYS after
  the campaign's release (the consent is spent by then; what was agreed to, and when, stays);
- the tokens of pre-saves that are settled (delivered, failed, revoked) RETENTION_SETTLED_TOKEN_DAYS after they
  settled: the engine drops them itself when a fan is delivered or fails for good, so this catches the
  failures Retry failed could still take back, and anything older;
- the scrambled visitor id of page views and clicks, RETENTION_VISITOR_HASH_DAYS after the visit (the counts
  stay: the console's tallies are kept apart);
- delivery attempts, RETENTION_ATTEMPT_DAYS after they were made;
- sessions past their expiry (Django keeps their rows until someone clears them).

The privacy notice (templates/fans/privacy_notice.html) states these periods; tests/fans/test_retention.py
holds the task to them.
"""

from __future__ import annotations

import datetime as dt
from importlib import import_module

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery.models import DeliveryAttempt
from fans import signups
from fans.models import ConsentRecord, Credential, FunnelEvent, Subscription


def periods() -> dict[str, int]:
    """The periods in days, for the privacy notice."""
    return {
        "consent_network": settings.RETENTION_CONSENT_NETWORK_DAYS,
        "settled_token": settings.RETENTION_SETTLED_TOKEN_DAYS,
        "visitor_hash": settings.RETENTION_VISITOR_HASH_DAYS,
        "attempts": settings.RETENTION_ATTEMPT_DAYS,
        "unconfirmed": settings.EMAIL_CONFIRM_LINK_MAX_AGE // 86_400,
    }


def days_ago(days: int, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=days)


def forget_expired() -> str:
    """The daily task: forget what is past its time; returns what it did, for django-q2's task result."""
    now = timezone.now()
    done = [signups.forget_unconfirmed()]
    spent = ConsentRecord.objects.filter(
        campaign__release__release_at__lt=days_ago(settings.RETENTION_CONSENT_NETWORK_DAYS, now)
    ).filter(Q(ip_address__isnull=False) | ~Q(user_agent=""))
    done.append(f"forgot the IP address and browser of {spent.update(ip_address=None, user_agent='')} consent(s)")
    settled = Credential.objects.exclude(subscription__status=Subscription.Status.PENDING).filter(
        subscription__updated_at__lt=days_ago(settings.RETENTION_SETTLED_TOKEN_DAYS, now)
    )
    done.append(f"deleted {settled.delete()[0]} settled pre-save token(s)")
    seen = FunnelEvent.objects.filter(created_at__lt=days_ago(settings.RETENTION_VISITOR_HASH_DAYS, now))
    done.append(f"forgot the visitor of {seen.exclude(visitor='').update(visitor='')} funnel event(s)")
    attempts = DeliveryAttempt.objects.filter(at__lt=days_ago(settings.RETENTION_ATTEMPT_DAYS, now))
    done.append(f"deleted {attempts.delete()[0]} delivery attempt(s)")
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    done.append("cleared expired sessions")
    return "; ".join(done)
