"""django-q2 task entry points. Tasks may run more than once: each one is idempotent."""

from delivery import engine


def deliver_campaign(campaign_id: int) -> str:
    """Deliver every due subscription of a campaign (the release-time Schedule and Deliver now)."""
    return engine.deliver_campaign(campaign_id).summary()


def resume_deliveries() -> str:
    """The sweeper: resume campaigns whose delivery has due work no live worker holds (e.g. after a crash)."""
    return engine.resume_deliveries()
