"""Admin pages that show records kept as evidence or history: viewable, never added, changed or deleted there."""

from __future__ import annotations

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """Viewable by staff with the view (or change) permission; never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
