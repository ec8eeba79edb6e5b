"""Keep each campaign's release-time schedules (delivery, release-day email), and its fans' planned delivery
times, in step with the campaign and its release."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone
from django_q.models import Schedule

from releases.models import Campaign, CampaignTally, Release


def sync_schedules_on_commit(campaign_id: int) -> None:
    """Once the change is committed, put the campaign's delivery and release-day email schedules in step."""
    from delivery import scheduling
    from fans import release_email

    def sync() -> None:
        campaign = Campaign.objects.select_related("release").filter(pk=campaign_id).first()
        if campaign is not None:
            scheduling.sync_schedule(campaign)
            release_email.sync_schedule(campaign)

    transaction.on_commit(sync)


# What decides when each fan's delivery fires (Campaign.firing_time).
FIRING_FIELDS = {Release: ("release_date", "release_time", "timezone"), Campaign: ("firing", "default_market")}


@receiver(pre_save, sender=Release)
@receiver(pre_save, sender=Campaign)
def note_firing_change(sender, instance, **kwargs) -> None:
    """Whether this save moves the firing times (compared with the row as stored), for the receivers below."""
    fields = FIRING_FIELDS[sender]
    stored = sender.objects.filter(pk=instance.pk).values_list(*fields).first() if instance.pk else None
    instance._firing_moved = stored is not None and stored != tuple(getattr(instance, name) for name in fields)


def follow_moved_firing(instance, campaign_ids: list[int]) -> None:
    """A moved release time: fans not tried yet lose their planned times (the next run plans them again), and a
    campaign that fires at one instant, delivering already, goes back to live when its release moved later
    (postponed): its runs stop claiming, pre-saves reopen, and its schedule fires at the new time."""
    from delivery import scheduling

    if not getattr(instance, "_firing_moved", False):
        return
    scheduling.forget_plans(campaign_ids)
    delivering = Campaign.objects.filter(
        pk__in=campaign_ids, firing=Campaign.Firing.INSTANT, status=Campaign.Status.DELIVERING
    )
    delivering.filter(release__release_at__gt=timezone.now()).set_status(Campaign.Status.LIVE)


@receiver(post_save, sender=Campaign)
def campaign_saved(sender, instance: Campaign, **kwargs) -> None:
    follow_moved_firing(instance, [instance.pk])
    sync_schedules_on_commit(instance.pk)


@receiver(post_save, sender=Release)
def release_saved(sender, instance: Release, **kwargs) -> None:
    campaign_ids = list(instance.campaigns.values_list("pk", flat=True))
    follow_moved_firing(instance, campaign_ids)
    for campaign_id in campaign_ids:
        sync_schedules_on_commit(campaign_id)


@receiver(post_delete, sender=Campaign)
def campaign_deleted(sender, instance: Campaign, **kwargs) -> None:
    """The tallies' campaign_id is not a foreign key (see CampaignTally): remove them with the campaign; its
    schedules (delivery, release-day email and its retry) go once the deletion is committed."""
    from delivery import scheduling
    from fans import release_email

    CampaignTally.objects.filter(campaign_id=instance.pk).delete()
    names = [
        scheduling.schedule_name(instance.pk),
        release_email.schedule_name(instance.pk),
        release_email.next_run_schedule_name(instance.pk),
    ]
    transaction.on_commit(lambda: Schedule.objects.filter(name__in=names).delete())
