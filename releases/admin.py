"""The label staff's console: artists, releases, and campaigns with their delivery figures and Deliver now."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import CharField, Count, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.text import format_lazy
from django_q.models import Schedule

from delivery.scheduling import SCHEDULE_NAME_PREFIX, deliver_now_once, due_counts
from delivery.services import enabled_services, staff_warnings
from delivery.workers import banner as worker_banner
from fans.models import Subscription
from fans.reserved import validate_campaign_slug
from presave_site.admin_filters import ConditionFilter
from presave_site.admin_input import HandMadeInput
from presave_site.readonly_admin import ReadOnlyAdminMixin
from releases import analytics, audit, charts, expiry, exports, markets, retry
from releases.models import SPOTIFY_ID, Artist, AuditEntry, Campaign, Release, ReleaseLink, validate_timezone
from releases.progress import progress, reading_in

DELIVER_PERMISSION = "deliver_campaign"
EXPORT_PERMISSION = "releases.export_subscribers"
STAFF_STATUSES = {Campaign.Status.DRAFT, Campaign.Status.LIVE}
RUNS_ON_WORKERS = {Campaign.Status.LIVE, Campaign.Status.DELIVERING}  # what still needs a worker to happen
RELEASE_YEARS = range(1900, 3000)


def utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def local_release_time(release: Release) -> str:
    return f"{release.release_date:%Y-%m-%d} {release.release_time:%H:%M} {release.timezone}"


def scheduled_time_subquery() -> Subquery:
    """The `next_run` of the campaign's Schedule, found by the name `delivery.scheduling.schedule_name` gives.

    The SQL counterpart of `delivery.scheduling.scheduled_time` for a whole page of campaigns.
    """
    name = Concat(Value(SCHEDULE_NAME_PREFIX), Cast(OuterRef("pk"), output_field=CharField()))
    return Subquery(Schedule.objects.filter(name=name).values("next_run")[:1])


def export_response(request: HttpRequest, name: str, back: str, **which) -> HttpResponse:
    """The streamed CSV of the subscribers of `which` (campaign= or artist=), in Excel's flavour on ?excel=1. An
    address asking for a filter the export does not have exports nothing, and says so on the page `back`."""
    unknown = exports.unknown_options(request.GET)
    if unknown:
        names = ", ".join(f"“{key[:40]}”" for key in unknown[:3])
        messages.warning(
            request,
            f"Nothing was exported: the export has no filter {names}, and would have held every subscriber instead "
            "of the ones asked for. Export with the button on this page, then filter in your spreadsheet.",
        )
        return HttpResponseRedirect(back)
    return exports.audited_export(request.user, name, excel=request.GET.get("excel") == "1", **which)


SPOTIFY_LINK = re.compile(
    rf"^https?://open\.spotify\.com/(?:intl-[a-z-]+/)?(?P<kind>artist|album|track)/(?P<id>{SPOTIFY_ID})/?(?:[?#].*)?$"
)


def spotify_uri_from_link(value: str) -> str:
    """Staff often paste the share link (https://open.spotify.com/album/…?si=…): turn it into the URI."""
    match = SPOTIFY_LINK.match(value.strip())
    return f"spotify:{match['kind']}:{match['id']}" if match else value.strip()


class SpotifyLinkField(forms.CharField):
    def to_python(self, value):
        return spotify_uri_from_link(super().to_python(value))


# --- Artists ---------------------------------------------------------------------------------------------
class ArtistAdminForm(forms.ModelForm):
    class Meta:
        model = Artist
        fields = ["name", "spotify_uri"]
        field_classes = {"spotify_uri": SpotifyLinkField}


@admin.register(Artist)
class ArtistAdmin(HandMadeInput, admin.ModelAdmin):
    form = ArtistAdminForm
    list_display = ["name", "spotify_uri", "release_count", "created_at"]
    search_fields = ["name", "spotify_uri"]
    # Said here, not only in Artist.Meta: the release count's GROUP BY makes Django drop the model's default
    # ordering, and the release form's artist search (autocomplete) paginated an unordered list.
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Artist]:
        return super().get_queryset(request).annotate(release_count=Count("releases"))

    @admin.display(description="releases", ordering="release_count")
    def release_count(self, artist: Artist) -> int:
        return artist.release_count

    def get_urls(self):
        return [
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="releases_artist_export",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_export": request.user.has_perm(EXPORT_PERMISSION)}
        return super().change_view(request, object_id, form_url, extra_context)

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Every campaign of the artist in one CSV."""
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        artist = self.get_object(request, unquote(object_id))
        if artist is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = reverse("admin:releases_artist_change", args=[artist.pk])
        return export_response(request, artist.name + "-all-campaigns", back, artist=artist)


# --- Releases --------------------------------------------------------------------------------------------
class ReleaseAdminForm(forms.ModelForm):
    class Meta:
        model = Release
        fields = [
            "artist",
            "title",
            "kind",
            "upc",
            "isrc",
            "spotify_uri",
            "release_date",
            "release_time",
            "timezone",
            "cover",
        ]
        field_classes = {"spotify_uri": SpotifyLinkField}

    def clean_release_date(self) -> dt.date:
        # Far from the ends of Python's calendar: the release instant in UTC or in any market, and the dates
        # the console counts back from it, must exist (9999-12-31 in Los Angeles is in the year 10000 in UTC).
        day = self.cleaned_data["release_date"]
        if not RELEASE_YEARS[0] <= day.year <= RELEASE_YEARS[-1]:
            raise ValidationError(
                "Enter a release date between the years %(first)s and %(last)s.",
                params={"first": RELEASE_YEARS[0], "last": RELEASE_YEARS[-1]},
            )
        return day

    def clean(self) -> dict:
        cleaned = super().clean()
        release_at = self.new_release_at(cleaned)
        if release_at is None or not self.instance.pk or release_at == self.instance.release_at:
            return cleaned
        # A per-market campaign fires first where local time is furthest ahead (UTC+14), hours before the release's.
        first = markets.earliest_release_instant(cleaned["release_date"], cleaned["release_time"])
        if self.instance.moving_starts_delivery(release_at, first):
            raise ValidationError(
                "This release has a live campaign: moving its release time into the past (for a per-market "
                "campaign, its first market's: %(first)s) would start delivering to fans at once. Set a later "
                "time, or use Deliver now on the campaign.",
                params={"first": utc(first)},
            )
        return cleaned

    @staticmethod
    def new_release_at(cleaned: dict) -> dt.datetime | None:
        day, time, zone = cleaned.get("release_date"), cleaned.get("release_time"), cleaned.get("timezone")
        if day is None or time is None or not zone:
            return None
        try:
            validate_timezone(zone)
        except ValidationError:
            return None  # the field's own validator reports it
        return markets.instant(day, time, zone)


class ReleaseLinkFormSet(BaseInlineFormSet):
    """One link per platform, checked against the database as well: Django compares only the rows posted, so a
    link saved meanwhile (in another tab), or a row posted as new that is not, would break the constraint
    (`one_link_per_platform`) as an IntegrityError, a 500. Two links trading platforms in one save would too
    (each row is saved in turn): that is refused with a word on how to do it."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        posted = [form for form in self.initial_forms if form.instance.pk]
        kept = [
            form for form in self.forms if (form in posted or form.has_changed()) and not self._should_delete_form(form)
        ]
        unposted = ReleaseLink.objects.none()
        if self.instance.pk:
            unposted = ReleaseLink.objects.filter(release=self.instance).exclude(pk__in=[f.instance.pk for f in posted])
        platforms = [*unposted.values_list("platform", flat=True), *(f.cleaned_data.get("platform") for f in kept)]
        labels = dict(ReleaseLink.Platform.choices)
        twice = sorted({labels.get(p, p) for p in platforms if p and platforms.count(p) > 1})
        if twice:
            raise ValidationError(
                "One listening link per platform: %(platforms)s has two (one may have been added meanwhile; "
                "reload the page to see it).",
                params={"platforms": ", ".join(twice)},
            )
        held = {form.initial.get("platform") for form in posted}
        moved = [
            form
            for form in kept
            if form in posted and form.cleaned_data.get("platform") != form.initial.get("platform")
        ]
        if any(form.cleaned_data.get("platform") in held for form in moved):
            raise ValidationError(
                "Two listening links can't trade platforms in one save: change or remove one, save, then change "
                "the other."
            )


class ReleaseLinkInline(admin.TabularInline):
    model = ReleaseLink
    formset = ReleaseLinkFormSet
    # One link per platform: no more rows than platforms, posted either (Django's own cap is 1,000 more than
    # max_num: a hand-edited TOTAL_FORMS=1001 rendered a thousand rows back, seconds per request).
    max_num = len(ReleaseLink.Platform.choices)
    extra = 1
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # a link pasted without its scheme
    verbose_name = "listening link"
    verbose_name_plural = "Listening links (the smart link page shows one button per platform once it's out)"

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, absolute_max=self.max_num, **kwargs)


@admin.register(Release)
class ReleaseAdmin(HandMadeInput, admin.ModelAdmin):
    form = ReleaseAdminForm
    inlines = [ReleaseLinkInline]
    list_display = ["cover_thumbnail", "title", "artist", "kind", "local_release_time", "release_utc"]
    list_display_links = ["cover_thumbnail", "title"]
    list_filter = ["kind"]
    list_select_related = ["artist"]
    search_fields = ["title", "artist__name", "upc", "isrc", "spotify_uri"]
    autocomplete_fields = ["artist"]
    date_hierarchy = "release_date"
    readonly_fields = ["release_utc", "cover_preview", "spotify_uri_found_by"]
    fieldsets = [
        (None, {"fields": ["artist", "title", "kind"]}),
        ("Identifiers", {"fields": ["upc", "isrc", "spotify_uri", "spotify_uri_found_by"]}),
        ("Release time", {"fields": ["release_date", "release_time", "timezone", "release_utc"]}),
        ("Cover", {"fields": ["cover", "cover_preview"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Release, form, change: bool) -> None:
        """A URI staff type is theirs; one found by the UPC or ISRC they change is forgotten, so that delivery
        looks the release up again by the corrected code (else the old code's release would be saved)."""
        changed = form.changed_data
        if "spotify_uri" in changed:
            obj.spotify_uri_found_by = Release.FoundBy.STAFF if obj.spotify_uri else ""
        elif obj.spotify_uri_found_by in changed:  # "upc" or "isrc": the field the URI was found by
            obj.spotify_uri, obj.spotify_uri_found_by = "", ""
        super().save_model(request, obj, form, change)

    @admin.display(description="release time (local)", ordering="release_at")
    def local_release_time(self, release: Release) -> str:
        return local_release_time(release)

    @admin.display(description="release time (UTC)", ordering="release_at")
    def release_utc(self, release: Release) -> str:
        return utc(release.release_at)

    @admin.display(description="cover")
    def cover_thumbnail(self, release: Release) -> str:
        if not release.cover:
            return "—"
        return format_html('<img src="{}" alt="" width="40" height="40" class="cover-thumbnail">', release.cover.url)

    @admin.display(description="current cover")
    def cover_preview(self, release: Release) -> str:
        if not release.cover:
            return "—"
        return format_html('<img src="{}" alt="Cover of {}" width="160">', release.cover.url, release.title)


# --- Campaigns -------------------------------------------------------------------------------------------
public_base_url = lazy(lambda: settings.PUBLIC_BASE_URL, str)


class CampaignAdminForm(forms.ModelForm):
    class Meta:
        model = Campaign
        # Lazy: read when the form is shown, so that it names the address the console's links use.
        help_texts = {
            "slug": format_lazy("The public page's address: {}/your-slug/", public_base_url()),
            "page_text": (
                "Shown while the page takes pre-saves; not once the release is out or the pre-save has closed."
            ),
        }
        fields = [
            "release",
            "slug",
            "status",
            "subtitle",
            "page_text",
            "save_release",
            "follow_artist",
            "playlist_name",
            "offer_email_optin",
            "firing",
            "default_market",
            "spread_minutes",
            "services",
        ]

    services = forms.MultipleChoiceField(label="Services offered", required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "services" in self.fields:  # the enabled services; none ticked: every enabled service
            offered = enabled_services()
            self.fields["services"].choices = [(cls.key, cls.label) for cls in offered]
            rules = " ".join(cls.staff_rules for cls in offered if cls.staff_rules)
            self.fields["services"].help_text = f"None ticked: every enabled service. {rules}".strip()
        if "status" in self.fields:  # delivering and done are set by the delivery engine, not by staff
            self.fields["status"].choices = [
                (value, label) for value, label in Campaign.Status.choices if value in STAFF_STATUSES
            ]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        validate_campaign_slug(slug)
        return slug

    def clean(self) -> dict:
        cleaned = super().clean()
        release, status = cleaned.get("release"), cleaned.get("status")
        going_live = status == Campaign.Status.LIVE and (
            self.instance.pk is None or "status" in self.changed_data or "release" in self.changed_data
        )
        if going_live and release is not None and release.is_out:
            self.add_error(
                "status",
                ValidationError(
                    "The release came out on %(when)s: a campaign can't go live after its release time. "
                    "Keep it as a draft, or change the release date.",
                    params={"when": utc(release.release_at)},
                ),
            )
        return cleaned


class ReleaseStateFilter(ConditionFilter):
    title = "release"
    parameter_name = "release_state"

    def conditions(self):
        now = timezone.now()
        return {
            "upcoming": ("Not out yet", Q(release__release_at__gt=now)),
            "out": ("Out", Q(release__release_at__lte=now)),
        }


@admin.register(Campaign)
class CampaignAdmin(HandMadeInput, admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = [
        "slug_with_link",
        "release",
        "status",
        "release_and_schedule",
        "presaves",
    ]
    list_filter = ["status", ReleaseStateFilter]
    list_select_related = ["release__artist"]
    search_fields = ["slug", "release__title", "release__artist__name"]
    autocomplete_fields = ["release"]
    actions = []  # Deliver now is one campaign at a time, on its page, after a confirm page that says what it closes
    fieldsets = [
        (None, {"fields": ["release", "slug", "status"]}),
        ("Page", {"fields": ["subtitle", "page_text"]}),
        (
            "What a pre-save does",
            {"fields": ["services", "save_release", "follow_artist", "playlist_name", "offer_email_optin"]},
        ),
        ("Release day", {"fields": ["firing", "default_market", "spread_minutes"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        queryset = super().get_queryset(request)
        return queryset.annotate(**analytics.kpi_annotations(), scheduled_at=scheduled_time_subquery())

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:
        if obj is not None and obj.status not in STAFF_STATUSES:
            return ["status"]  # delivering or done: the engine owns it now
        return []

    def has_deliver_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{DELIVER_PERMISSION}")

    # --- columns ----------------------------------------------------------------------------------------
    @admin.display(description="slug", ordering="slug")
    def slug_with_link(self, campaign: Campaign) -> str:
        return format_html(
            '{}<br><a href="{}" target="_blank" rel="noopener">public page ↗</a>',
            campaign.slug,
            campaign.public_url(),
        )

    @admin.display(description="release / delivery", ordering="release__release_at")
    def release_and_schedule(self, campaign: Campaign) -> str:
        release_at, scheduled_at = campaign.release.release_at, campaign.scheduled_at
        if scheduled_at is None:
            schedule = "not scheduled"
        elif scheduled_at == release_at:
            schedule = "scheduled at the release time"
        else:
            schedule = f"scheduled {utc(scheduled_at)}"
        return format_html("{}<br><small>{}</small>", utc(release_at), schedule)

    @admin.display(description="pre-saves", ordering="kpi_pending")
    def presaves(self, campaign: Campaign) -> str:
        """The four counts in one column, so the list fits a 1400 px window beside the menu and the filters (four
        columns did not); it sorts by the first, the pre-saves still to deliver."""
        return format_html(
            "{} pending · {} delivered<br><small>{} failed · {} revoked</small>",
            campaign.kpi_pending,
            campaign.kpi_delivered,
            campaign.kpi_failed,
            campaign.kpi_revoked,
        )

    # --- the change page: KPI panel, schedule, warnings, insights ---------------------------------------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            counts = {status: getattr(obj, f"kpi_{status}") for status in Subscription.Status.values}
            last_deliver = audit.last_entry(obj, AuditEntry.Action.DELIVER_NOW)
            events = analytics.funnel_counts(obj)
            context.update(
                {
                    "kpis": [(label, counts[status]) for status, label in Subscription.Status.choices],
                    "public_url": obj.public_url(),
                    "release_utc": utc(obj.release.release_at),
                    "release_local": local_release_time(obj.release) if obj.release.timezone != "UTC" else "",
                    "release_warnings": expiry.release_too_far_out(obj) + staff_warnings(obj),
                    "at_risk": expiry.at_risk_count(obj),
                    "market_firing": [(market, utc(at), count) for market, at, count in analytics.firing_times(obj)]
                    if obj.firing == Campaign.Firing.PER_MARKET
                    else [],
                    "can_deliver": self.has_deliver_permission(request, obj) and obj.status != Campaign.Status.DRAFT,
                    **(worker_banner() if obj.status in RUNS_ON_WORKERS else {}),
                    "can_export": request.user.has_perm(EXPORT_PERMISSION),
                    "deliver_now_url": self.url("deliver_now", obj),
                    "retry_failed_url": self.url("retry_failed", obj),
                    "export_url": self.url("export", obj),
                    "progress_url": self.url("progress", obj),
                    "subscribers_url": reverse(f"{self.admin_site.name}:fans_subscription_changelist")
                    + f"?campaign={obj.pk}",
                    "last_deliver": last_deliver,
                    "progress": progress(obj),
                    "retryable": retry.retryable_count(obj, failed=counts["failed"]),
                    "funnel": analytics.funnel(obj, delivered=counts["delivered"], events=events),
                    "visitors": events["visitors"],
                    "breakdowns": analytics.breakdowns(obj),
                    "by_service": analytics.by_service(obj),
                    "presaves_chart": charts.daily_bars(analytics.presaves_per_day(obj), title="Pre-saves per day"),
                    "failure_reasons": analytics.failure_reasons(obj),
                    "unknown_error": analytics.UNKNOWN_ERROR,
                    "waiting_reasons": analytics.waiting_reasons(obj) if counts["pending"] else ([], False),
                    "waiting_sample": f"{analytics.WAITING_SAMPLE:,}",
                    "email_stats": analytics.email_stats(obj),
                    "email_signups": analytics.email_signups(obj),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def url(self, name: str, campaign: Campaign) -> str:
        return reverse(f"{self.admin_site.name}:releases_campaign_{name}", args=[campaign.pk])

    def get_urls(self):
        views = {
            "deliver_now": ("deliver-now", self.deliver_now_view),
            "retry_failed": ("retry-failed", self.retry_failed_view),
            "progress": ("progress", self.progress_view),
            "export": ("export", self.export_view),
        }
        return [
            *(
                path(f"<path:object_id>/{suffix}/", self.admin_site.admin_view(view), name=f"releases_campaign_{name}")
                for name, (suffix, view) in views.items()
            ),
            *super().get_urls(),
        ]

    def campaign_or_404(self, request: HttpRequest, object_id: str) -> Campaign:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No such campaign.")
        return campaign

    # --- Deliver now and Retry failed: a confirm page, then a POST ----------------------------------------
    def start_delivery(self, request: HttpRequest, campaign: Campaign) -> tuple[int, int] | None:
        """Queue the delivery and record it with the fans due now (`due_counts`, counted before the run leases
        them), unless a Deliver now of it was queued seconds ago (then nothing is queued or recorded); returns
        (due now, waiting for their market's time), or None when it queued nothing."""
        counts = due_counts(campaign)
        if not deliver_now_once(campaign):
            return None
        self.log_change(request, campaign, "Started delivery now.")
        due, later = counts
        audit.record(request.user, AuditEntry.Action.DELIVER_NOW, campaign=campaign, rows=due, later=later)
        return counts

    def deliverable_campaign(self, request: HttpRequest, object_id: str) -> Campaign | None:
        """The campaign (None if there is none), provided the user may deliver it."""
        campaign = self.get_object(request, unquote(object_id))
        if campaign is not None and not self.has_deliver_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def confirm_page(self, request: HttpRequest, campaign: Campaign, template: str, **context) -> HttpResponse:
        """A confirm page (templates/admin/releases/campaign/confirm.html and the pages extending it)."""
        context = {
            **self.admin_site.each_context(request),
            "subtitle": str(campaign),
            "opts": self.opts,
            "campaign": campaign,
            "change_url": self.url("change", campaign),
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"admin/releases/campaign/{template}", context)

    def deliver_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self.deliverable_campaign(request, object_id)
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        is_draft = campaign.status == Campaign.Status.DRAFT
        # Done with nothing pending: a run would only mark it done again and mail the release-day report twice.
        nothing_to_deliver = campaign.status == Campaign.Status.DONE and not campaign.kpi_pending
        if request.method == "POST":
            if is_draft:
                self.message_user(request, "A draft campaign can't be delivered; make it live first.", messages.ERROR)
            elif nothing_to_deliver:
                self.message_user(
                    request, f"Nothing to deliver: “{campaign}” is done, no pre-save is pending.", messages.INFO
                )
            elif counts := self.start_delivery(request, campaign):
                due, later = counts
                waits = "waits" if later == 1 else "wait"
                waiting = f"; {later} {waits} for their market's release time" if later else ""
                self.message_user(
                    request,
                    f"Delivery of “{campaign}” started for {due} pending {analytics.presaves(due)} due now{waiting}.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"Delivery of “{campaign}” was already queued a moment ago; nothing more was queued.",
                    messages.INFO,
                )
            return HttpResponseRedirect(self.url("change", campaign))
        return self.confirm_page(
            request,
            campaign,
            "deliver_now_confirm.html",
            title="Deliver now?",
            is_draft=is_draft,
            nothing_to_deliver=nothing_to_deliver,
            can_confirm=not is_draft and not nothing_to_deliver,
            pending=campaign.kpi_pending,
            release_utc=utc(campaign.release.release_at),
            last_deliver=audit.last_entry(campaign, AuditEntry.Action.DELIVER_NOW),
            # At one instant, delivering ends the pre-save: before the release time, that is a choice to warn of.
            closes_presaves=campaign.firing == Campaign.Firing.INSTANT and campaign.accepts_presaves_in(),
            per_market=campaign.firing == Campaign.Firing.PER_MARKET,
        )

    def retry_failed_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self.deliverable_campaign(request, object_id)
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "POST":
            waits = retry.waits_for_release(campaign)
            count = retry.retry_failed(campaign)
            audit.record(request.user, AuditEntry.Action.RETRY_FAILED, campaign=campaign, rows=count)
            self.log_change(request, campaign, f"Re-queued {count} failed {analytics.presaves(count)}.")
            when = (
                f"; they wait for the release time ({utc(campaign.first_firing_time())}): the campaign is live again "
                "and takes pre-saves until then"
                if waits and count
                else " for delivery"
            )
            self.message_user(request, f"Re-queued {count} failed {analytics.presaves(count)}{when}.", messages.SUCCESS)
            return HttpResponseRedirect(self.url("change", campaign))
        retryable = retry.retryable_count(campaign)
        return self.confirm_page(
            request,
            campaign,
            "retry_failed_confirm.html",
            title="Retry failed deliveries?",
            retryable=retryable,
            can_confirm=retryable > 0,
            failed=campaign.kpi_failed,
        )

    # --- Live progress (htmx partial) -------------------------------------------------------------------------
    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self.campaign_or_404(request, object_id)
        if not self.has_view_or_change_permission(request, campaign):
            raise PermissionDenied
        readings = (reading_in(request.GET, "done", "at"), reading_in(request.GET, "later_done", "later_at"))
        reading = progress(campaign, *readings)
        events = analytics.funnel_counts(campaign)
        context = {
            "progress": reading,
            "progress_url": self.url("progress", campaign),
            "funnel": analytics.funnel(campaign, delivered=reading.delivered, events=events),
            "visitors": events["visitors"],
        }
        return TemplateResponse(request, "admin/releases/campaign/includes/progress_refresh.html", context)

    # --- Export ---------------------------------------------------------------------------------------------
    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return export_response(request, campaign.slug, self.url("change", campaign), campaign=campaign)


# --- Audit log (managers) --------------------------------------------------------------------------------
@admin.register(AuditEntry)
class AuditEntryAdmin(HandMadeInput, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "username", "action", "campaign", "rows", "details"]
    list_filter = ["action", "campaign"]
    list_select_related = ["campaign__release"]
    search_fields = ["username", "campaign__slug"]
    date_hierarchy = "at"
    fields = ["at", "user", "username", "action", "campaign", "rows", "details"]
    readonly_fields = fields
