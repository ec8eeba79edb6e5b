"""The admin's history (django.contrib.admin's LogEntry) names each object it records by its str(): a fan's name,
their email address. Erasing a fan, and forgetting what is past its time, blanks those names, and reduces each
entry's message to what names nobody: the kinds of change and the field names (Django's inline changes keep the
str() of each inline object; a message written in words may hold anything)."""

import json
from collections.abc import Iterable

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model

ERASED = "(erased)"
KINDS = ("added", "changed", "deleted")  # what Django's construct_change_message writes


def forget(model: type[Model], pks: Iterable[int]) -> int:
    """Blank the name and reduce the message of each history entry about `model`'s rows `pks`; returns how many
    entries changed."""
    ids = [str(pk) for pk in pks]
    if not ids:
        return 0
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    changed = []
    for entry in entries.only("object_repr", "change_message"):
        message = reduced(entry.change_message)
        if entry.object_repr != ERASED or entry.change_message != message:
            entry.object_repr, entry.change_message = ERASED, message
            changed.append(entry)
    LogEntry.objects.bulk_update(changed, ["object_repr", "change_message"])
    return len(changed)


def reduced(message: str) -> str:
    """A history message without what may name someone: Django's JSON keeps its kinds of change, the kind of each
    inline object and the field names, each inline object's name becomes "(erased)"; anything else is blanked."""
    if not message:
        return ""
    try:
        actions = json.loads(message)
    except ValueError:
        return ""
    if not isinstance(actions, list):
        return ""
    kept = []
    for action in actions:
        if not isinstance(action, dict):
            continue
        for kind, detail in action.items():
            if kind not in KINDS or not isinstance(detail, dict):
                continue
            plain = {}
            if isinstance(detail.get("name"), str):
                plain["name"] = detail["name"]  # the model's verbose name
            if "object" in detail:
                plain["object"] = ERASED
            if isinstance(detail.get("fields"), list):
                plain["fields"] = [field for field in detail["fields"] if isinstance(field, str)]
            kept.append({kind: plain})
    return json.dumps(kept)
