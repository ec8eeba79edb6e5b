"""Staff edits reach the public pages at once: saving or deleting a campaign, its release, artist or links
drops the cached campaign pages that show them (fans/pagecache.py); so does the delivery engine moving a
campaign's status (releases.models.status_changed: Deliver now, the release-time run, the campaign done)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from fans import pagecache
from releases.models import Artist, Campaign, Release, ReleaseLink, status_changed


@receiver(pre_save, sender=Campaign)
def remember_old_slug(sender, instance: Campaign, **kwargs) -> None:
    if instance.pk:
        instance._fans_old_slug = Campaign.objects.filter(pk=instance.pk).values_list("slug", flat=True).first()


@receiver([post_save, post_delete], sender=Campaign)
def campaign_changed(sender, instance: Campaign, **kwargs) -> None:
    pagecache.forget([instance.slug, getattr(instance, "_fans_old_slug", None) or ""])


@receiver(status_changed, sender=Campaign)
def campaign_status_changed(sender, slugs: list[str], **kwargs) -> None:
    pagecache.forget(slugs)


@receiver([post_save, post_delete], sender=Release)
def release_changed(sender, instance: Release, **kwargs) -> None:
    pagecache.forget(Campaign.objects.filter(release_id=instance.pk).values_list("slug", flat=True))


@receiver([post_save, post_delete], sender=Artist)
def artist_changed(sender, instance: Artist, **kwargs) -> None:
    pagecache.forget(Campaign.objects.filter(release__artist_id=instance.pk).values_list("slug", flat=True))


@receiver([post_save, post_delete], sender=ReleaseLink)
def link_changed(sender, instance: ReleaseLink, **kwargs) -> None:
    pagecache.forget(Campaign.objects.filter(release_id=instance.release_id).values_list("slug", flat=True))
