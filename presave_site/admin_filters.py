"""A list filter whose every choice stands for one condition, for the console's yes/no and before/after filters."""

from __future__ import annotations

from typing import Any

from django.contrib import admin


class ConditionFilter(admin.SimpleListFilter):
    """`conditions()` maps each choice's value to its label and its condition: anything `QuerySet.filter` takes
    (a Q, an Exists or its negation)."""

    def conditions(self) -> dict[str, tuple[str, Any]]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.conditions().items()]

    def queryset(self, request, queryset):
        choice = self.conditions().get(self.value())
        return queryset.filter(choice[1]) if choice else queryset
