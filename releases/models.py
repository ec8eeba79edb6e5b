"""Artists, their releases, and the pre-save campaigns that promote them."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models, transaction
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from releases import markets
from releases.plain_text import refuse_invisible_characters

NOT_PLACES = {"localtime", "Factory"}  # the server's own zone, and tzdata's placeholder: no release clock


@functools.cache
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() - NOT_PLACES)


def validate_timezone(name: str) -> None:
    if name not in time_zone_names():
        raise ValidationError("“%(name)s” is not a time zone name such as Europe/London.", params={"name": name})


WEB_SCHEMES = ("http", "https")


def is_web_url(url: str) -> bool:
    """Whether `url` is a web page a fan may be sent to (never javascript:, data:, ftp:…)."""
    return url.lower().startswith(tuple(f"{scheme}://" for scheme in WEB_SCHEMES))


upc_validator = RegexValidator(r"^[0-9]{12,13}$", "A UPC/EAN has 12 or 13 digits.")  # ASCII: \d takes ١٢٣
isrc_validator = RegexValidator(
    r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$", "An ISRC looks like GBAYE2600001 (country, registrant, year, number)."
)
market_validator = RegexValidator(
    markets.MARKET_PATTERN.pattern, "A market is a two-letter country code such as US or GB."
)
SPREAD_MAX_MINUTES = 24 * 60


def validate_known_market(value: str) -> None:
    """A default market must be a country whose release clock we know: an unknown code would fire at UTC."""
    if markets.MARKET_PATTERN.match(value or "") and not markets.is_known(value):
        raise ValidationError(f"{value} is not a country code we know. Use one such as US, GB or DE.")


SPOTIFY_ID = "[0-9A-Za-z]{22}"  # base-62: https://developer.spotify.com/documentation/web-api/concepts/spotify-uris-ids
spotify_artist_validator = RegexValidator(
    f"^spotify:artist:{SPOTIFY_ID}$",
    "Paste the artist's Spotify URI, e.g. spotify:artist:0OdUWJ0sBjDrqHygGUXeCF.",
)
spotify_release_validator = RegexValidator(
    f"^spotify:(album|track):{SPOTIFY_ID}$",
    "Paste the release's Spotify URI, e.g. spotify:album:4aawyAB9vmqN3uQ7FjRGTy.",
)
PLAYLIST_NAME_MAX = 100  # characters


class Artist(models.Model):
    name = models.CharField(max_length=200)
    spotify_uri = models.CharField("Spotify URI", max_length=60, blank=True, validators=[spotify_artist_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        refuse_invisible_characters(self, ("name",))


class Release(models.Model):
    class Kind(models.TextChoices):
        ALBUM = "album", "Album"
        SINGLE = "single", "Single"
        TRACK = "track", "Track"

    artist = models.ForeignKey(Artist, on_delete=models.PROTECT, related_name="releases")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ALBUM)
    upc = models.CharField("UPC", max_length=13, blank=True, validators=[upc_validator])
    isrc = models.CharField("ISRC", max_length=12, blank=True, validators=[isrc_validator])
    spotify_uri = models.CharField("Spotify URI", max_length=60, blank=True, validators=[spotify_release_validator])

    class FoundBy(models.TextChoices):
        STAFF = "staff", "Typed by staff"
        UPC = "upc", "Found by UPC"
        ISRC = "isrc", "Found by ISRC"

    spotify_uri_found_by = models.CharField(
        "Spotify URI found by",
        max_length=5,
        choices=FoundBy.choices,
        blank=True,
        help_text="How the Spotify URI was found: typed by staff, or looked up on Spotify by the UPC or ISRC "
        "(blank: no URI, or one set before this was recorded). One found by a code is looked up again when "
        "the code is changed.",
    )
    release_date = models.DateField()
    release_time = models.TimeField(default=dt.time(0, 0), help_text="Local time in the release's time zone.")
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="e.g. Europe/London"
    )
    release_at = models.DateTimeField(editable=False, db_index=True, help_text="The release instant (UTC).")
    cover = models.ImageField(upload_to="covers/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-release_date", "title"]

    def __str__(self) -> str:
        return f"{self.artist} — {self.title}"

    def save(self, *args, **kwargs) -> None:
        self.release_at = markets.instant(self.release_date, self.release_time, self.timezone)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        refuse_invisible_characters(self, ("title",))
        if self.kind == self.Kind.TRACK and not self.isrc:
            raise ValidationError({"isrc": "A track needs its ISRC."})
        if self.spotify_uri.startswith("spotify:track:") and self.kind != self.Kind.TRACK:
            raise ValidationError({"spotify_uri": "This is a track URI; the release is not a track."})

    @property
    def is_out(self) -> bool:
        return self.release_at <= timezone.now()

    def moving_starts_delivery(self, release_at: dt.datetime, first: dt.datetime) -> bool:
        """Whether moving the release to `release_at` (its first market's time: `first`) would have a live campaign
        start delivering at once: it is past, or, for a per-market campaign, the first market's time is."""
        now = timezone.now()
        live = self.campaigns.filter(status=Campaign.Status.LIVE)
        return (release_at <= now and live.exists()) or (
            first <= now and live.filter(firing=Campaign.Firing.PER_MARKET).exists()
        )


class ReleaseLink(models.Model):
    """Where fans can listen once the release is out: one link per platform, shown on the smart link page."""

    class Platform(models.TextChoices):
        SPOTIFY = "spotify", "Spotify"
        APPLE_MUSIC = "apple_music", "Apple Music"
        DEEZER = "deezer", "Deezer"
        AMAZON_MUSIC = "amazon_music", "Amazon Music"
        YOUTUBE_MUSIC = "youtube_music", "YouTube Music"
        TIDAL = "tidal", "Tidal"
        SOUNDCLOUD = "soundcloud", "SoundCloud"
        BANDCAMP = "bandcamp", "Bandcamp"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="links")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    url = models.URLField(max_length=500, help_text="The release's page on this platform (https://…).")

    class Meta:
        ordering = ["release", "platform"]
        constraints = [models.UniqueConstraint(fields=["release", "platform"], name="one_link_per_platform")]

    def __str__(self) -> str:
        return f"{self.get_platform_display()}: {self.url}"

    def clean(self) -> None:
        # URLField also accepts ftp://; fans are only ever sent to web pages.
        if self.url and not is_web_url(self.url):
            raise ValidationError({"url": "Enter a web address starting with https:// (or http://)."})


# What a service can't do, and what a campaign that does only that does, in the words of Campaign.clean.
CANNOT_WORDS = {"follow": "follow artists", "playlist": "add releases to playlists"}
ONLY_WORDS = {"follow": "follows the artist", "playlist": "adds the release to a playlist"}


# Sent once a status change by CampaignQuerySet.set_status is committed, with the campaigns' `slugs`: an UPDATE
# sends no post_save, and the public pages that show the status (fans/signals.py) must still hear of it.
status_changed = Signal()


class CampaignQuerySet(models.QuerySet):
    def public(self) -> CampaignQuerySet:
        """The campaigns the public may see (anything but a draft), with their release and artist."""
        return self.select_related("release__artist").exclude(status=Campaign.Status.DRAFT)

    def set_status(self, status: str) -> int:
        """Move these campaigns to `status` in one UPDATE (the delivery engine's way: no save, no race with
        staff's edits); returns how many moved. The one way a status changes without a save: once committed,
        `status_changed` tells the public pages, which would otherwise offer pre-saves that have closed."""
        slugs = list(self.exclude(status=status).values_list("slug", flat=True))
        moved = self.filter(slug__in=slugs).update(status=status) if slugs else 0
        if moved:
            transaction.on_commit(lambda: status_changed.send(Campaign, slugs=slugs))
        return moved


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        DELIVERING = "delivering", "Delivering"
        DONE = "done", "Done"

    class Firing(models.TextChoices):
        INSTANT = "instant", "At the release time (one instant)"
        PER_MARKET = "per_market", "At the release's local time in each market"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="campaigns")
    slug = models.SlugField(max_length=80, unique=True, help_text="The public page’s address: https://your-site/slug/.")
    subtitle = models.CharField(max_length=200, blank=True)
    page_text = models.TextField(blank=True)
    save_release = models.BooleanField("save the release to the fan's library", default=True)
    follow_artist = models.BooleanField("follow the artist", default=False)
    playlist_name = models.CharField(
        "add the release to a playlist named",
        max_length=PLAYLIST_NAME_MAX,
        blank=True,
        help_text="Blank: no playlist. Otherwise, on release day we create a private playlist with this name in each "
        "fan's own account and add the release's tracks to it, e.g. “Glass Harbour — Pre-saves”. Spotify only: "
        "Apple Music and Deezer fans get the rest.",
    )
    offer_email_optin = models.BooleanField("offer the “email me when it drops” opt-in", default=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT, db_index=True)
    firing = models.CharField(
        "when it fires",
        max_length=12,
        choices=Firing.choices,
        default=Firing.INSTANT,
        help_text="Per market: each fan's save fires at the release's local time in the fan's market.",
    )
    default_market = models.CharField(
        max_length=2,
        default="US",
        validators=[market_validator, validate_known_market],
        help_text="The market of fans whose country is unknown (two letters, e.g. US).",
    )
    spread_minutes = models.PositiveIntegerField(
        "firing window (minutes)",
        default=0,
        validators=[MaxValueValidator(SPREAD_MAX_MINUTES, f"At most {SPREAD_MAX_MINUTES} minutes (a day).")],
        help_text="Spread the deliveries over this many minutes after firing (0: as fast as the service allows).",
    )
    services = models.JSONField(
        "services offered",
        default=list,
        blank=True,
        help_text="Keys of the services this campaign offers (e.g. spotify); empty: every enabled service.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("deliver_campaign", "Can start a campaign's delivery"),
            ("export_subscribers", "Can export a campaign's subscribers (CSV)"),
        ]

    def __str__(self) -> str:
        return f"{self.release.title} ({self.slug})"

    def get_absolute_url(self) -> str:
        return reverse("fans:campaign", args=[self.slug])

    def public_url(self) -> str:
        """The public page's full address: for links that leave the site (the console, emails) and share tags."""
        return settings.PUBLIC_BASE_URL + self.get_absolute_url()

    def clean(self) -> None:
        # The playlist name reaches every fan's own account as it is: no line break, nor a right-to-left override.
        refuse_invisible_characters(
            self, ("subtitle", "playlist_name"), multiline=("page_text",), labels={"playlist_name": "playlist name"}
        )
        self.playlist_name = self.playlist_name.strip()
        if not self.save_release and not self.follow_artist and not self.playlist_name:
            raise ValidationError(
                {
                    "save_release": "A pre-save must save the release, follow the artist or add it to a playlist: "
                    "tick or fill in at least one."
                }
            )
        if not self.release_id:
            return
        if self.follow_artist:
            artist = self.release.artist
            missing = [(cls.label, needs) for cls in self.selected_services() if (needs := cls().follow_needs(artist))]
            if missing:
                raise ValidationError(
                    {
                        "follow_artist": [
                            f"Following the artist on {label} needs {needs}. Add it to the artist, or don't offer "
                            f"{label} in this campaign."
                            for label, needs in missing
                        ]
                    }
                )
        idle = [cls.label for cls in self.selected_services() if not cls().actions(self)]
        if idle:  # a campaign that does not save, offering a service that can do none of what it does instead
            asked = [action for action, on in (("follow", self.follow_artist), ("playlist", self.playlist_name)) if on]
            cannot = " or ".join(CANNOT_WORDS[action] for action in asked)
            only = " and ".join(ONLY_WORDS[action] for action in asked)
            raise ValidationError(
                {
                    "services": [
                        f"{label} can't {cannot}, so its fans would get nothing from a pre-save that only {only}. "
                        f"Save the release too, or don't offer {label} (tick only the services to offer)."
                        for label in idle
                    ]
                }
            )

    def firing_time(self, market: str = "") -> dt.datetime:
        """When delivery fires for fans in `market` ("" or unknown: the campaign's default market)."""
        release = self.release
        if self.firing == self.Firing.INSTANT:
            return release.release_at
        return markets.local_release_instant(release.release_date, release.release_time, self.market_for(market))

    def market_for(self, market: str, country: str = "") -> str:
        """The market a fan's pre-save stands for, given its `market` and the fan's `country` (Fan.country): the
        fan's market (`markets.of_fan`: the pre-save's when it names a real country, for one without the fan's
        country), else (blank, "XX", "EU", a typo) the campaign's default market. The one reading of a fan's
        market: the engine, the console and the fan's pages all ask it (`Subscription.delivery_market`; a query
        reads the fan's country with `fans.models.country_without_market`)."""
        return markets.of_fan(market, country) or self.default_market

    def first_firing_time(self) -> dt.datetime:
        """When the schedule fires: the release time, or in per-market mode the first market's local time."""
        release = self.release
        if self.firing == self.Firing.INSTANT:
            return release.release_at
        return markets.earliest_release_instant(release.release_date, release.release_time)

    def selected_services(self) -> list:
        """The enabled service classes this campaign names (every enabled one when it names none), in registry
        order: what `clean` checks."""
        from delivery.services import enabled_services

        return [cls for cls in enabled_services() if not self.services or cls.key in self.services]

    def offered_services(self) -> list:
        """The selected services fans are offered: those with something to do for this campaign (Service.actions).
        `clean` refuses a selection with one that has nothing to do; this also keeps out a service switched on
        after the campaign was saved (Apple Music, which can't follow, on a campaign that only follows)."""
        return [cls for cls in self.selected_services() if cls().actions(self)]

    def last_firing_time(self) -> dt.datetime:
        """When the release is out everywhere: the release time, or in per-market mode the last market's."""
        release = self.release
        if self.firing == self.Firing.INSTANT:
            return release.release_at
        return markets.latest_release_instant(release.release_date, release.release_time)

    def release_zone(self, market: str = "") -> str:
        """The time zone the release time is told in to fans in `market`: the release's, or per market the
        market's own (it goes out at the same local time everywhere)."""
        if self.firing == self.Firing.INSTANT:
            return self.release.timezone
        return markets.zone_for(self.market_for(market)).key

    def seen_from(self, market: str = "") -> SeenFrom:
        """The campaign as fans in `market` ("" or unknown: the campaign's default market) see it now: their
        release time, whether the release is out for them, whether they may pre-save. One reading of the clock
        for all three, so that a page never says both "not out yet" and "closed"."""
        release_at = self.firing_time(market)
        is_out = release_at <= timezone.now()
        # A per-market campaign goes on taking pre-saves while it is delivering to the markets already out.
        statuses = [self.Status.LIVE] + ([self.Status.DELIVERING] if self.firing == self.Firing.PER_MARKET else [])
        return SeenFrom(release_at, is_out, accepting=self.status in statuses and not is_out)

    def is_out_in(self, market: str = "") -> bool:
        """Whether the release is out for fans in `market` ("" or unknown: the campaign's default market)."""
        return self.seen_from(market).is_out

    def closed_everywhere(self) -> bool:
        """Whether, once delivering, no fan anywhere may pre-save any more (so that the campaign may be done): one
        that fires at one instant takes none from then on; a per-market one until it is out in the last market."""
        return self.firing == self.Firing.INSTANT or self.last_firing_time() <= timezone.now()

    def accepts_presaves_in(self, market: str = "") -> bool:
        """Whether a fan in `market` may pre-save: the campaign is live and the release not out there yet. A
        per-market campaign goes on taking pre-saves while it is delivering to the markets already out."""
        return self.seen_from(market).accepting


@dataclass(frozen=True)
class SeenFrom:
    """A campaign as the fans of one market see it at one moment (Campaign.seen_from)."""

    release_at: dt.datetime
    is_out: bool
    accepting: bool  # whether they may pre-save


class AuditEntry(models.Model):
    """Who did what to a campaign's fans, and to how many: Deliver now, Retry failed, exports, a fan erased in the
    console (no campaign: `rows` counts the fan's pre-saves, `details` what was erased, by kind). Never edited."""

    class Action(models.TextChoices):
        DELIVER_NOW = "deliver_now", "Deliver now"
        RETRY_FAILED = "retry_failed", "Retry failed"
        EXPORT = "export", "Export subscribers"
        ERASE_FAN = "erase_fan", "Erase a fan"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=20, choices=Action.choices)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    rows = models.PositiveIntegerField(default=0, help_text="How many subscriptions it concerned.")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["campaign", "action", "-at"], name="audit_by_campaign")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username}: {self.get_action_display()}"


class CampaignTally(models.Model):
    """Running counts per campaign (subscriptions by status, funnel events by kind), kept by PostgreSQL
    statement-level triggers (releases/migrations/0007_campaign_tallies.py) so the console reads a handful of
    rows instead of counting a million. `campaign_id` is a plain column: the triggers may write while Django
    deletes a campaign's rows, and a foreign key would refuse that order.
    """

    campaign_id = models.BigIntegerField()
    key = models.CharField(
        max_length=200,
        help_text="subscription:<status>, service:<service>:<status>, day:<date>, funnel:<kind>, funnel:visitors, "
        "funnel:<kind>:<dimension>:<value> (source, country, device, in_app_browser; service, for events naming one)",
    )
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign_id", "key"], name="one_tally_per_key")]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.key}: {self.count}"
