"""Fans, their subscriptions and their consent records: for label staff to look at, not to edit.

Credentials are not in the admin at all: staff see only when a fan authorized and whether a token is stored.
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import display_for_value
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.constants import LOOKUP_SEP
from django.db.models.functions import Coalesce, Lower
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from delivery.models import DeliveryAttempt
from delivery.services import service_choices
from fans import privacy
from fans.models import ConsentRecord, ConsentRecordQuerySet, Fan, ReleaseEmail, Subscription, country_without_market
from presave_site.admin_filters import ConditionFilter
from presave_site.admin_input import HandMadeInput, is_id
from presave_site.readonly_admin import ReadOnlyAdminMixin
from releases import audit, markets
from releases.admin import EXPORT_PERMISSION
from releases.models import AuditEntry, Campaign

# No "Show counts" on the fans' tables: Django counts a custom filter's choices with one subquery per row and
# choice, which on a campaign's millions of rows keeps PostgreSQL busy for an hour (the filters' choices stay).
NO_FACETS = admin.ShowFacets.NEVER


class ServiceFilter(admin.SimpleListFilter):
    """Filter by streaming service, with the choices from the service registry."""

    title = "service"
    parameter_name = "service"
    field = "service"

    def lookups(self, request, model_admin):
        return service_choices()

    def queryset(self, request, queryset):
        if self.value():
            if self.value() not in dict(service_choices()):
                raise IncorrectLookupParameters("No such service.")  # the admin answers ?e=1, not a 500
            return queryset.filter(**{self.field: self.value()})
        return queryset


class FanServiceFilter(ServiceFilter):
    field = "fan__service"


class CampaignFilter(admin.SimpleListFilter):
    """Filter by campaign slug: one query for the choices, however many campaigns there are."""

    title = "campaign"
    parameter_name = "campaign"

    def lookups(self, request, model_admin):
        return [(str(pk), slug) for pk, slug in Campaign.objects.order_by("slug").values_list("pk", "slug")]

    def queryset(self, request, queryset):
        if self.value():
            if not is_id(self.value()):
                raise IncorrectLookupParameters("No such campaign.")  # the admin answers ?e=1, not a 500
            return queryset.filter(campaign_id=self.value())
        return queryset


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    show_change_link = False

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.fields


# --- Withdrawn addresses ---------------------------------------------------------------------------------
# A consent's address once the fan withdrew it (cancelled the pre-save, unsubscribed, or pre-saved again without
# the email box): the record keeps it, as evidence of what was agreed and for the fan's own privacy requests by
# address (fans/privacy.py), but label staff neither see it nor find the fan by it. The fan's own address is
# forgotten at withdrawal already (fans.revocation.forget_unshared_emails).
WITHDRAWN_EMAIL = ~Q(email="") & ~ConsentRecordQuerySet.SHARING_EMAIL
# When: the revocation; else the unsubscription from the release email sent for it, or to its address for the
# campaign (one email per address); else the consent that replaced it (the same pre-save, answered again without
# the email box). Index lookups each (ReleaseEmail's consent, one_release_email_whatever_the_case: the address whatever
# its case, as unsubscribing withdraws it, and the campaign; the subscription).
UNSUBSCRIBED = ReleaseEmail.objects.filter(unsubscribed_at__isnull=False).values("unsubscribed_at")
WITHDRAWN_AT = Coalesce(
    "revoked_at",
    Subquery(UNSUBSCRIBED.filter(consent=OuterRef("pk"))[:1]),
    Subquery(UNSUBSCRIBED.filter(campaign=OuterRef("campaign"), email__lower=Lower(OuterRef("email")))[:1]),
    Subquery(
        ConsentRecord.objects.filter(subscription=OuterRef("subscription"), created_at__gt=OuterRef("created_at"))
        .order_by("created_at")
        .values("created_at")[:1]
    ),
)


def withdrawn(at) -> str:
    return f"withdrawn on {at:%Y-%m-%d}" if at else "withdrawn"


class SharedEmailSearch:
    """Search by address finds only the rows whose address is still shared; no hand-made filter by it either."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= queryset.filter(ConsentRecordQuerySet.SHARING_EMAIL, email__icontains=search_term.strip())
        return found, may_have_duplicates

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if lookup.split(LOOKUP_SEP)[0] == "email":
            return False
        return super().lookup_allowed(lookup, value, request)


# --- Fans ------------------------------------------------------------------------------------------------
class FanSubscriptionInline(ReadOnlyInline):
    model = Subscription
    fields = ["campaign", "status", "attempts", "last_error", "delivered_at", "created_at"]
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("campaign__release")


@admin.register(Fan)
class FanAdmin(HandMadeInput, admin.ModelAdmin):
    show_facets = NO_FACETS
    list_display = ["__str__", "service", "service_user_id", "email_address", "country", "created_at"]
    list_filter = [ServiceFilter, "country"]
    # A fan's address is kept only while a consent shares it (fans.revocation.forget_unshared_emails).
    search_fields = ["display_name", "email", "service_user_id"]
    fields = ["service", "service_user_id", "display_name", "email_address", "country", "created_at", "updated_at"]
    readonly_fields = fields
    inlines = [FanSubscriptionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fan]:
        withdrawals = (
            ConsentRecord.objects.filter(WITHDRAWN_EMAIL, subscription__fan=OuterRef("pk"))
            .annotate(at=WITHDRAWN_AT)
            .order_by(F("at").desc(nulls_last=True))
        )
        return (
            super()
            .get_queryset(request)
            .annotate(email_withdrawn=Exists(withdrawals), email_withdrawn_at=Subquery(withdrawals.values("at")[:1]))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # fans come from the service's sign-in, never from the admin

    @admin.display(description="email", ordering="email")
    def email_address(self, fan: Fan) -> str:
        if fan.email or not fan.email_withdrawn:
            return fan.email
        return withdrawn(fan.email_withdrawn_at)

    # --- Delete is erasure ---------------------------------------------------------------------------------
    # Deleting a fan here (the fan's page or "delete selected") does what the fan's own "erase everything" does
    # (fans.privacy.erase): tokens gone, consents without who, funnel events unlinked, the history naming nobody.
    # Only the permission to delete fans is needed (superusers; neither role has it): the erasure, not Django's
    # cascade, removes the subscriptions and credentials, which are never deleted one by one here.
    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            function, name, _ = actions["delete_selected"]
            actions["delete_selected"] = (function, name, "Erase selected fans (as their own “erase everything”)")
        return actions

    def get_deleted_objects(self, objs, request: HttpRequest):
        """The fans and how many pre-saves they have, not Django's cascade (its credentials name their keys)."""
        fans = list(objs)
        pre_saves = Subscription.objects.filter(fan__in=fans).count()
        return [f"Fan: {fan}" for fan in fans], {"fans": len(fans), "pre-saves": pre_saves}, set(), []

    def delete_model(self, request: HttpRequest, fan: Fan) -> None:
        erased = privacy.erase(privacy.Subject(fan=fan))
        audit.record(request.user, AuditEntry.Action.ERASE_FAN, rows=erased["subscriptions"], **erased)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Fan]) -> None:
        for fan in queryset:
            self.delete_model(request, fan)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id) -> HttpResponse:
        """Django's answer names the fan (its message is kept in a cookie): this one names nobody."""
        self.message_user(request, "The fan was erased, as their own “erase everything” does.", messages.SUCCESS)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:fans_fan_changelist"))


def delivered_in(rows: QuerySet) -> dict[str, Q]:
    """Each market the pre-saves `rows` are delivered in (their campaign's `market_for`: the pre-save's market, for
    one without the fan's country, else the campaign's default) → the condition that picks them out of `rows` given
    `country=country_without_market()`. One query reads the distinct campaigns, markets and fans' countries, one
    the campaigns: none a row."""
    found = rows.annotate(country=country_without_market()).values_list("campaign_id", "market", "country")
    combinations = list(found.distinct().order_by())
    campaigns = Campaign.objects.in_bulk({campaign_id for campaign_id, _, _ in combinations})
    conditions: dict[str, Q] = defaultdict(Q)
    for campaign_id, market, country in combinations:
        delivery_market = campaigns[campaign_id].market_for(market, country)
        conditions[delivery_market] |= Q(campaign_id=campaign_id, market=market, country=country)
    return conditions


class MarketFilter(admin.SimpleListFilter):
    """Filter by the market each pre-save is delivered in (`delivered_in`), not only its stored one: one without
    a market is its fan's country's or its campaign's default's. The choices are those markets (in the chosen
    campaign, if any)."""

    title = "market"
    parameter_name = "market"

    def lookups(self, request, model_admin):
        rows = Subscription.objects.all()
        campaign = request.GET.get("campaign", "")
        if is_id(campaign):
            rows = rows.filter(campaign_id=campaign)
        return [(market, market) for market in sorted(delivered_in(rows))[:250]]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        condition = delivered_in(queryset).get(self.value())
        if condition is None:
            return queryset.none()
        return queryset.alias(country=country_without_market()).filter(condition)


class EmailOptInFilter(ConditionFilter):
    title = "email opt-in"
    parameter_name = "email_opt_in"

    def conditions(self):
        opted_in = Exists(ConsentRecord.objects.sharing_email().filter(subscription=OuterRef("pk")))
        return {"yes": ("Opted in to email", opted_in), "no": ("Not opted in", ~opted_in)}


ATTEMPT_WORDS = {
    DeliveryAttempt.Outcome.DELIVERED: "saved",
    DeliveryAttempt.Outcome.RETRY: "will try again",
    DeliveryAttempt.Outcome.FAILED: "gave up",
    DeliveryAttempt.Outcome.REVOKED: "authorization gone",
}


# --- Subscriptions ---------------------------------------------------------------------------------------
class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ["at", "call", "outcome", "http_status", "message"]
    verbose_name_plural = "attempt history"


class ConsentEvidence:
    """A consent's IP address and browser are evidence for a dispute, not marketing data: only managers (who may
    export subscribers, releases.admin.EXPORT_PERMISSION) see them; label staff see what the fan agreed to."""

    EVIDENCE = ("ip_address", "user_agent")

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = super().get_fields(request, obj)
        if request.user.has_perm(EXPORT_PERMISSION):
            return fields
        return [name for name in fields if name not in self.EVIDENCE]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Nor may they filter by it: `?ip_address=…` would tell whether a fan consented from an address."""
        hidden = request is None or not request.user.has_perm(EXPORT_PERMISSION)
        if hidden and lookup.split(LOOKUP_SEP)[0] in self.EVIDENCE:
            return False
        return super().lookup_allowed(lookup, value, request)


class ConsentScopes:
    """A consent's scopes as staff read them, one after another: the field itself shows the stored JSON."""

    @admin.display(description="scopes")
    def scope_list(self, consent: ConsentRecord) -> str:
        return ", ".join(consent.scopes) if consent.scopes else "—"


class ConsentRecordInline(ConsentEvidence, ConsentScopes, ReadOnlyInline):
    model = ConsentRecord
    fields = ["created_at", "scope_list", "wording_version", "email_opt_in", "ip_address", "revoked_at"]
    show_change_link = True

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.get_fields(request, obj)


@admin.register(Subscription)
class SubscriptionAdmin(HandMadeInput, ReadOnlyAdminMixin, admin.ModelAdmin):
    show_facets = NO_FACETS
    list_display = [
        "fan",
        "campaign",
        "service",
        "market_in_words",
        "status",
        "attempts",
        "attempt_history",
        "last_error_in_words",
        "delivered_at",
    ]
    list_filter = ["status", CampaignFilter, FanServiceFilter, MarketFilter, EmailOptInFilter]
    list_select_related = ["fan", "campaign__release"]
    search_fields = ["fan__display_name", "fan__email", "fan__service_user_id"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["fan", "campaign", "status", "created_at", "updated_at"]}),
        ("Authorization", {"fields": ["authorized_at", "token_stored"]}),
        (
            "Delivery",
            {"fields": ["attempts", "last_error", "done_calls", "next_attempt_at", "lease_expires_at", "delivered_at"]},
        ),
    ]
    readonly_fields = ["authorized_at", "token_stored"]
    inlines = [DeliveryAttemptInline, ConsentRecordInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        recent = DeliveryAttempt.objects.order_by("-at")[:3]  # one query per page of rows
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("attempts_log", queryset=recent, to_attr="recent_attempts"))
        )

    @admin.display(description="service", ordering="fan__service")
    def service(self, subscription: Subscription) -> str:
        return subscription.fan.get_service_display()

    @admin.display(description="market")
    def market_in_words(self, subscription: Subscription) -> str:
        """The market the pre-save is delivered in (`Subscription.delivery_market`), as the market filter lists it,
        and, when it is not the pre-save's own, where it comes from: the fan's country, or the campaign's default
        (naming a stored market that is no country). Not sortable: the database holds only the stored market."""
        market = subscription.delivery_market()
        if markets.country(subscription.market):
            return market
        if markets.of_fan(subscription.market, subscription.fan.country):
            return f"{market} (fan's country)"
        if subscription.market:
            return f"{market} (default; stored: {subscription.market})"
        return f"{market} (default)"

    @admin.display(description="recent attempts")
    def attempt_history(self, subscription: Subscription) -> str:
        attempts = getattr(subscription, "recent_attempts", [])
        if not attempts:
            return "—"
        return format_html_join(
            mark_safe("<br>"),  # noqa: S308 - a constant
            '<span title="{}">{} {}: {}</span>',
            ((a.message, f"{a.at:%m-%d %H:%M:%S}", a.call, ATTEMPT_WORDS.get(a.outcome, a.outcome)) for a in attempts),
        )

    @admin.display(description="last error", ordering="last_error")
    def last_error_in_words(self, subscription: Subscription) -> str:
        if not subscription.last_error:
            return "—"
        return format_html(
            '<span title="{}">{}</span>', subscription.last_error, truncatechars(subscription.last_error, 80)
        )

    @admin.display(description="authorized at")
    def authorized_at(self, subscription: Subscription) -> str:
        """Formatted as the admin shows the page's other dates: a method's value is shown as it is."""
        credential = self._credential(subscription)
        return display_for_value(credential.authorized_at if credential else None, "—")

    @admin.display(description="token stored", boolean=True)
    def token_stored(self, subscription: Subscription) -> bool:
        return self._credential(subscription) is not None

    @staticmethod
    def _credential(subscription: Subscription):
        try:
            return subscription.credential
        except ObjectDoesNotExist:
            return None


# --- Consent records -------------------------------------------------------------------------------------
class RevokedFilter(ConditionFilter):
    title = "revoked"
    parameter_name = "revoked"

    def conditions(self):
        return {"yes": ("Revoked", Q(revoked_at__isnull=False)), "no": ("Not revoked", Q(revoked_at__isnull=True))}


@admin.register(ConsentRecord)
class ConsentRecordAdmin(
    ConsentEvidence, ConsentScopes, SharedEmailSearch, HandMadeInput, ReadOnlyAdminMixin, admin.ModelAdmin
):
    """What each fan agreed to: evidence, so nobody edits or deletes it here."""

    show_facets = NO_FACETS

    list_display = [
        "__str__",
        "campaign",
        "service",
        "email_opt_in",
        "wording_version",
        "created_at",
        "revoked_at",
    ]
    list_filter = [ServiceFilter, "email_opt_in", RevokedFilter, CampaignFilter]
    list_select_related = ["campaign__release"]
    search_fields = ["display_name", "service_user_id"]  # and the address while shared: SharedEmailSearch
    date_hierarchy = "created_at"
    fields = [
        "campaign",
        "subscription",
        "service",
        "service_user_id",
        "display_name",
        "email_address",
        "scope_list",
        "wording_version",
        "email_opt_in",
        "ip_address",
        "user_agent",
        "created_at",
        "revoked_at",
    ]
    readonly_fields = ["email_address", "scope_list"]
    exclude = ["revoke_token_hash"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentRecord]:
        shared = Exists(ConsentRecord.objects.sharing_email().filter(pk=OuterRef("pk")))
        return super().get_queryset(request).annotate(email_withdrawn_at=WITHDRAWN_AT, email_shared=shared)

    @admin.display(description="email")
    def email_address(self, consent: ConsentRecord) -> str:
        if consent.email and not consent.email_shared:  # as search finds it: SHARING_EMAIL
            return withdrawn(consent.email_withdrawn_at)
        return consent.email
