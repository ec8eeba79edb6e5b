"""Keep each campaign's release-time schedules (delivery, release-day email) in step with the campaign and its
release."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from releases.models import Campaign, CampaignTally, Release


@receiver(post_save, sender=Campaign)
def campaign_saved(sender, instance: Campaign, **kwargs) -> None:
    from delivery.scheduling import on_campaign_change
    from fans import release_email

    on_campaign_change(instance.pk)
    release_email.on_campaign_change(instance.pk)


@receiver(post_save, sender=Release)
def release_saved(sender, instance: Release, **kwargs) -> None:
    from delivery.scheduling import on_campaign_change
    from fans import release_email

    for campaign_id in instance.campaigns.values_list("pk", flat=True):
        on_campaign_change(campaign_id)
        release_email.on_campaign_change(campaign_id)


@receiver(post_delete, sender=Campaign)
def campaign_deleted(sender, instance: Campaign, **kwargs) -> None:
    """The tallies' campaign_id is not a foreign key (see CampaignTally): remove them with the campaign."""
    CampaignTally.objects.filter(campaign_id=instance.pk).delete()
