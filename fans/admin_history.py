"""The admin's history (django.contrib.admin's LogEntry) names each object it records by its str(): a fan's name,
their email address. Erasing a fan, and forgetting what is past its time, blanks those names."""

from collections.abc import Iterable

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model

ERASED = "(erased)"


def forget(model: type[Model], pks: Iterable[int]) -> int:
    """Blank the name of each history entry about `model`'s rows `pks`; returns how many entries changed."""
    ids = [str(pk) for pk in pks]
    if not ids:
        return 0
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    return entries.exclude(object_repr=ERASED).update(object_repr=ERASED)
