"""Whether django-q2 clusters are running: the release-time delivery, Deliver now, the minute sweeper and the
release-day email all wait for one. Each cluster saves its status to the shared cache (`default`: the database
or Redis) every moment, for three seconds at a time, so a cluster that stopped or died drops out at once."""

from __future__ import annotations

from django_q.conf import Conf
from django_q.status import Stat


def clusters_running() -> int:
    """How many clusters reported in over the last few seconds (a stopping one is not counted)."""
    return sum(1 for stat in Stat.get_all() if stat.status != Conf.STOPPED)
