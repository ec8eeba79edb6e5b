"""Whether django-q2 clusters are running: the release-time delivery, Deliver now, the minute sweeper and the
release-day email all wait for one. Each cluster saves its status to the shared cache (`default`: the database
or Redis) every moment, for three seconds at a time, so a cluster that stopped or died drops out at once.

A cluster can also be stuck while its status says it runs: after one of its worker processes is killed
(`kill -9`, the OOM killer), django-q2 starts another but the cluster may process no task again (an open
django-q2 bug: django-q2 issue #23, Koed00/django-q #200 and #394). The minute sweeper's heartbeat shows it: the
sweeper records when it ran (`record_sweep`) in the shared cache, and the console warns when that is older than
STUCK_AFTER while a cluster claims to run (`stuck_since`). On release day the sweeper's task may wait that long
behind runs that hold every worker: while a run took or renewed a lease within STUCK_AFTER (`delivering`: runs
renew theirs every quarter of DELIVERY_LEASE_SECONDS) the clusters demonstrably work, and nothing is shown."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_q.conf import Conf
from django_q.status import Stat

from fans.models import Subscription

HEARTBEAT_KEY = "delivery:sweeper:last-run"
# The sweeper runs every minute; three minutes is two missed sweeps and a slow one, not a busy queue's moment.
STUCK_AFTER = dt.timedelta(minutes=3)


def record_sweep() -> None:
    """The minute sweeper ran now: in the shared cache, which every web process reads (kept until replaced)."""
    cache.set(HEARTBEAT_KEY, timezone.now().timestamp(), None)


def last_sweep() -> dt.datetime | None:
    seen = cache.get(HEARTBEAT_KEY)
    return dt.datetime.fromtimestamp(seen, tz=dt.UTC) if seen is not None else None


def delivering() -> bool:
    """Whether a run took or renewed a lease within STUCK_AFTER: a lease expiring later than that long before a
    fresh one would. Asked only when the heartbeat is stale: it reads the pending subscriptions."""
    fresh = timezone.now() + dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    held = Subscription.objects.filter(status=Subscription.Status.PENDING, lease_expires_at__gt=fresh - STUCK_AFTER)
    return held.exists()


def stuck_since(running: list[Stat]) -> dt.datetime | None:
    """With `running` clusters: since when no sweep ran, if that is STUCK_AFTER ago or more (the last sweep's
    time; with none recorded, the oldest running cluster's start); None when all is well, none runs, or a run is
    delivering (`delivering`: the sweeper's task waits behind busy workers)."""
    if not running:
        return None
    since = last_sweep() or min((stat.tob for stat in running if stat.tob), default=None)
    if since is None or timezone.now() - since < STUCK_AFTER or delivering():
        return None
    return since


def banner() -> dict:
    """What the console's worker banner says (templates/admin/releases/includes/no_workers.html): `no_workers`
    when no cluster reports in; else `worker_stuck_since` ("22:30 UTC", with the date when not today) when the
    sweeper has not run for STUCK_AFTER though a cluster claims to run."""
    running = [stat for stat in Stat.get_all() if stat.status != Conf.STOPPED]
    since = stuck_since(running)
    words = None
    if since is not None:
        since = since.astimezone(dt.UTC)
        today = since.date() == timezone.now().astimezone(dt.UTC).date()
        words = f"{since:%H:%M} UTC" if today else f"{since:%Y-%m-%d %H:%M} UTC"
    return {"no_workers": not running, "worker_stuck_since": words}
