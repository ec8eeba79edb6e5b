"""Every delivery attempt, read-only: what was called for which fan, and what came of it."""

from __future__ import annotations

from django.contrib import admin

from delivery.models import DeliveryAttempt
from presave_site.admin_input import HandMadeInput
from presave_site.readonly_admin import ReadOnlyAdminMixin


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(HandMadeInput, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "fan", "campaign", "call", "outcome", "http_status", "message"]
    list_filter = ["outcome", "call"]
    list_select_related = ["subscription__fan", "subscription__campaign"]
    search_fields = [
        "subscription__fan__display_name",
        "subscription__fan__email",
        "subscription__fan__service_user_id",
    ]
    date_hierarchy = "at"
    fields = ["subscription", "at", "call", "outcome", "http_status", "message"]

    @admin.display(description="fan", ordering="subscription__fan__display_name")
    def fan(self, attempt: DeliveryAttempt):
        return attempt.subscription.fan

    @admin.display(description="campaign", ordering="subscription__campaign__slug")
    def campaign(self, attempt: DeliveryAttempt) -> str:
        return attempt.subscription.campaign.slug
