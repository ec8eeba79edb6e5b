"""django-q2 task entry points. Tasks may run more than once: each one is idempotent."""

from delivery import engine, scheduling, workers
from fans import release_email


def deliver_campaign(campaign_id: int, fan_out: bool = True, reopen: bool = False) -> str:
    """Deliver every due subscription of a campaign: the task Deliver now and Retry failed queue (`reopen`: staff
    asked, so a live campaign is started, and a campaign whose delivery is done is delivered again when fans are
    pending), the sweeper's and the helper runs (`fan_out` False), which only go on with a delivery under way:
    they neither start a live campaign (that waits for its release-time schedule) nor re-open a done one.

    With `fan_out`, the run first queues helper runs so that several workers share a big campaign."""
    return engine.deliver_campaign(campaign_id, fan_out=fan_out, reopen=reopen, start=reopen).summary()


def deliver_on_schedule(campaign_id: int) -> str:
    """The release-time Schedule's task: `deliver_campaign`, unless the release was moved later after the
    schedule queued this task (the schedule moved with it, and fires again at the new time)."""
    return engine.deliver_campaign(campaign_id, on_schedule=True).summary()


def resume_deliveries() -> str:
    """The sweeper: resume campaigns whose delivery has due work no live worker holds (e.g. after a crash), and
    start the release-time deliveries and release-day emails whose task was lost. It first records that it ran:
    the console warns when it has not for a while (a stuck cluster, delivery/workers.py)."""
    workers.record_sweep()
    summary = scheduling.resume_deliveries()
    emails = release_email.start_missed_runs()
    return summary + (f", started {emails} missed release-day email run(s)" if emails else "")
