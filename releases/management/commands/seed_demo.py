"""Seed the demo: an admin login, the sandbox's two artists, their releases with drawn covers, and three
campaigns: `glass-harbour` (live, releasing in a few minutes; it saves the album, follows the artist and, on
Spotify, adds the album to a private playlist), `folded-maps` (live, weeks out) and `low-tide-lights` (a draft).

Idempotent: objects are found by name and slug and updated. Re-running moves `glass-harbour`'s release time to
now + --release-in-minutes, so the demo always shows the release-day schedule firing, and keeps the staff logged
in (their passwords are set only when they differ: a new hash would end every session).

The funnel's authorizations are the demo's real pre-saves: those made in the demo record their own, and a
pre-save found without one gets it, with the page view and click before it. Around them, page views and clicks
that went no further, so the console's charts have something to show.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import zoneinfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, ImageDraw, ImageFont

from delivery.sandbox import demo_catalog as catalog
from delivery.scheduling import sync_schedule
from delivery.services import SERVICES
from releases import markets
from releases.models import Artist, Campaign, Release, ReleaseLink

ADMIN_USERNAME = "admin"
DEMO_ROLES = {"label": "Label staff", "manager": "Manager"}  # usernames → groups, same password
ADMIN_PASSWORD = "presave-demo"
LONDON = "Europe/London"
TRAFFIC_SOURCES = [("instagram", "", "instagram"), ("tiktok", "", "tiktok"), ("", "news.example", ""), ("", "", "")]
DEMO_COUNTRIES = ["GB", "US", "DE", "FR", "SE"]
DEMO_PLAYLIST = "Glass Harbour — Pre-saves"  # the playlist glass-harbour makes in each Spotify fan's account


# Where Glass Harbour can be heard once it is out (the smart link); made-up addresses on the real sites.
DEMO_LINKS = {
    "apple_music": "https://music.apple.com/gb/album/glass-harbour/1700000001",
    "deezer": "https://www.deezer.com/album/600000001",
    "youtube_music": "https://music.youtube.com/playlist?list=OLAK5uy_glassharbourdemo",
    "amazon_music": "https://music.amazon.com/albums/B0GLASSHRB",
    "tidal": "https://tidal.com/browse/album/300000001",
}


def draw_cover(title: str, artist: str, top: str, bottom: str, size: int = 800) -> bytes:
    """A square JPEG cover: a vertical gradient from `top` to `bottom`, a soft sun, the title and artist."""
    mask = Image.linear_gradient("L").resize((size, size))
    image = Image.composite(Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), mask)
    draw = ImageDraw.Draw(image, "RGBA")
    cx, cy = size * 0.68, size * 0.36
    for step in range(12):
        radius = size * (0.30 - step * 0.02)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 244, 220, 22))
    for line in range(6):
        y = size * (0.60 + line * 0.018)
        draw.line((0, y, size, y), fill=(255, 255, 255, 40 - line * 5), width=max(1, size // 400))

    margin = size * 0.08
    font_size = size // 10
    title_font = ImageFont.load_default(size=font_size)
    while draw.textlength(title, font=title_font) > size - 2 * margin and font_size > 12:
        font_size -= 4
        title_font = ImageFont.load_default(size=font_size)
    artist_font = ImageFont.load_default(size=size // 24)
    draw.text((margin, size * 0.74), title, font=title_font, fill=(255, 255, 255, 255))
    draw.text((margin, size * 0.74 + font_size * 1.3), artist.upper(), font=artist_font, fill=(255, 255, 255, 210))

    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def keep_or_set_password(user, password: str) -> None:
    """Set `password` unless it is the user's already: set again, it would hash with a new salt, and Django ends
    every session whose stored password hash no longer matches (re-seeding would log the staff out)."""
    if not user.has_usable_password() or not user.check_password(password):
        user.set_password(password)


def next_friday(after: dt.date, weeks: int) -> dt.date:
    """The first Friday (new music day) at least `weeks` weeks after `after`."""
    day = after + dt.timedelta(weeks=weeks)
    return day + dt.timedelta(days=(4 - day.weekday()) % 7)


class Command(BaseCommand):
    help = (
        "Create or update the demo data: admin login, artists, releases with covers, and campaigns. "
        "Safe to re-run; `glass-harbour` is moved to release --release-in-minutes from now."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--release-in-minutes",
            type=int,
            default=10,
            help="Minutes from now until the live `glass-harbour` campaign releases (default 10).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG off. The demo admin has a published password: never on a real site.",
        )

    def handle(self, *args, release_in_minutes: int, force: bool, **options) -> None:
        if release_in_minutes < 1:
            raise CommandError("--release-in-minutes must be at least 1.")
        if not settings.DEBUG and not force:
            raise CommandError(
                f"seed_demo creates the superuser {ADMIN_USERNAME!r} with a published password, so it runs "
                "only with DEBUG on. Pass --force to seed anyway."
            )
        now = timezone.now()
        with transaction.atomic():
            self.seed_admin()
            nova = self.artist("Nova Lark", catalog.NOVA_LARK_ARTIST_ID)
            tides = self.artist("The Paper Tides", catalog.PAPER_TIDES_ARTIST_ID)

            first_light_at = (now + dt.timedelta(minutes=release_in_minutes)).replace(microsecond=0)
            glass_harbour = self.release(
                nova,
                "Glass Harbour",
                kind=Release.Kind.ALBUM,
                upc=catalog.NOVA_LARK_ALBUM_UPC,
                spotify_uri=f"spotify:album:{catalog.NOVA_LARK_ALBUM_ID}",
                release_at=first_light_at,
                tz="UTC",
                colours=("#1d2671", "#f8a978"),
            )
            folded_maps = self.release(
                tides,
                "Folded Maps",
                kind=Release.Kind.SINGLE,
                upc=catalog.PAPER_TIDES_ALBUM_UPC,
                isrc=catalog.PAPER_TIDES_TRACK_ISRC,
                spotify_uri=f"spotify:album:{catalog.PAPER_TIDES_ALBUM_ID}",
                release_at=self.midnight(next_friday(now.date(), weeks=3), LONDON),
                tz=LONDON,
                colours=("#0f4c5c", "#e9d8a6"),
            )
            low_tide = self.release(
                nova,
                "Low Tide Lights",
                kind=Release.Kind.TRACK,
                isrc=catalog.NOVA_LARK_TRACK_2_ISRC,
                spotify_uri=f"spotify:track:{catalog.NOVA_LARK_TRACK_2_ID}",
                release_at=self.midnight(next_friday(now.date(), weeks=8), LONDON),
                tz=LONDON,
                colours=("#3a1c71", "#ffaf7b"),
            )

            for platform, url in DEMO_LINKS.items():  # the smart link's buttons once it is out
                ReleaseLink.objects.update_or_create(release=glass_harbour, platform=platform, defaults={"url": url})
            first_light = self.campaign(
                "glass-harbour",
                glass_harbour,
                status=Campaign.Status.LIVE,
                follow_artist=True,
                playlist_name=DEMO_PLAYLIST,
                services=list(SERVICES),  # Spotify, Apple Music and Deezer: run_demo points all three at the sandbox
                subtitle="The debut album by Nova Lark",
                page_text=(
                    "Ten songs written on night ferries between harbour towns. Pre-save Glass Harbour and it "
                    "lands in your library as soon as it is out."
                ),
            )
            self.campaign(
                "folded-maps",
                folded_maps,
                status=Campaign.Status.LIVE,
                follow_artist=False,
                subtitle="A new single from The Paper Tides",
                page_text="A song about the places you only find by getting lost. Out on a Friday.",
            )
            self.campaign(
                "low-tide-lights",
                low_tide,
                status=Campaign.Status.DRAFT,
                follow_artist=True,
                subtitle="Nova Lark — the second single",
                page_text="Not announced yet: this draft page is only visible to label staff.",
            )

            self.seed_roles()
            self.seed_traffic(first_light, now)

        delivery_at = first_light.release.release_at
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded 2 artists, 3 releases and 3 campaigns; glass-harbour releases at "
                f"{delivery_at:%H:%M:%S} UTC (in {release_in_minutes} min). "
                f"Admin login: {ADMIN_USERNAME} / {ADMIN_PASSWORD} (also {' and '.join(DEMO_ROLES)}, same password; "
                "whoever is logged in stays logged in)"
            )
        )

    def seed_roles(self) -> None:
        """One user per role (the groups come from a migration), with the demo's password."""
        from django.contrib.auth.models import Group

        for username, group in DEMO_ROLES.items():
            user, _ = get_user_model().objects.get_or_create(
                username=username, defaults={"email": f"{username}@label.example"}
            )
            user.is_staff, user.is_superuser = True, False
            keep_or_set_password(user, ADMIN_PASSWORD)
            user.save()
            user.groups.set([Group.objects.get(name=group)])

    def seed_traffic(self, campaign: Campaign, now: dt.datetime) -> None:
        """The funnel: each real pre-save's authorization (with its view and click), and views and clicks around
        them that went no further, two weeks of them, so the console's funnel and breakdowns show."""
        from fans.models import EmailSignup, FunnelEvent

        rng = random.Random(7)  # noqa: S311 - demo data
        browsers = random.Random(11)  # noqa: S311 - who visits: its own draws, so the rest stays as it was
        # Earlier seeds made up authorizations (no service, no pre-save): the funnel's must be the pre-saves'.
        FunnelEvent.objects.filter(
            campaign=campaign, kind=FunnelEvent.Kind.AUTHORIZE, service="", subscription=None
        ).delete()
        events = (
            []
            if FunnelEvent.objects.filter(campaign=campaign).exists()
            else self.passers_by(campaign, now, rng, browsers)
        )
        events += self.presave_trails(campaign, rng, browsers)
        FunnelEvent.objects.bulk_create(events)
        for address in ("mira@fans.example", "jon@fans.example"):
            EmailSignup.objects.get_or_create(
                campaign=campaign,
                email=address,
                defaults={"wording_version": "demo", "country": "GB", "confirmed_at": timezone.now()},
            )

    @staticmethod
    def visit(campaign: Campaign, rng: random.Random, visitor: str, at: dt.datetime, country: str) -> dict:
        utm, referrer, in_app = rng.choice(TRAFFIC_SOURCES)
        return {
            "campaign": campaign,
            "utm_source": utm,
            "referrer_domain": referrer,
            "in_app_browser": in_app,
            "country": country,
            "device": rng.choice(["mobile", "mobile", "desktop", "tablet"]),
            "created_at": at,
            "visitor": visitor,
        }

    def passers_by(self, campaign: Campaign, now: dt.datetime, rng: random.Random, browsers: random.Random) -> list:
        """Two weeks of page views, a third of them clicking a button, none signing in: the visitors who did are
        the real pre-saves (`presave_trails`)."""
        from fans.models import FunnelEvent

        events, visitor = [], ""
        for day in range(14):
            for _ in range(rng.randint(4, 10)):
                if not visitor or browsers.random() > 0.2:  # a fifth come back the same day: one visitor
                    visitor = f"{browsers.getrandbits(128):032x}"
                at = now - dt.timedelta(days=day, minutes=rng.randint(0, 1400))
                common = self.visit(campaign, rng, visitor, at, rng.choice(DEMO_COUNTRIES))
                events.append(FunnelEvent(kind=FunnelEvent.Kind.VIEW, **common))
                if rng.random() < 0.35:
                    service = rng.choice(list(SERVICES))
                    events.append(FunnelEvent(kind=FunnelEvent.Kind.CLICK, service=service, **common))
        return events

    def presave_trails(self, campaign: Campaign, rng: random.Random, browsers: random.Random) -> list:
        """For each pre-save without its authorization in the funnel (made before this seed, or by hand): the page
        view, the button click and the authorization that led to it, from one visitor, minutes before it."""
        from fans.models import FunnelEvent, Subscription

        unrecorded = (
            Subscription.objects.filter(campaign=campaign)
            .exclude(funnel_events__kind=FunnelEvent.Kind.AUTHORIZE)
            .select_related("fan")
        )
        events = []
        for subscription in unrecorded:
            service, at = subscription.fan.service, subscription.created_at
            visitor = f"{browsers.getrandbits(128):032x}"
            country = markets.of_fan(subscription.market, subscription.fan.country)  # the engine's, or "" (unknown)
            common = self.visit(campaign, rng, visitor, at, country)
            events += [
                FunnelEvent(kind=FunnelEvent.Kind.VIEW, **{**common, "created_at": at - dt.timedelta(minutes=3)}),
                FunnelEvent(
                    kind=FunnelEvent.Kind.CLICK,
                    service=service,
                    **{**common, "created_at": at - dt.timedelta(minutes=2)},
                ),
                FunnelEvent(kind=FunnelEvent.Kind.AUTHORIZE, service=service, subscription=subscription, **common),
            ]
        return events

    def seed_admin(self) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@label.example"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        keep_or_set_password(user, ADMIN_PASSWORD)
        user.save()

    def artist(self, name: str, spotify_id: str) -> Artist:
        artist, _ = Artist.objects.update_or_create(name=name, defaults={"spotify_uri": f"spotify:artist:{spotify_id}"})
        return artist

    @staticmethod
    def midnight(day: dt.date, tz: str) -> dt.datetime:
        return markets.instant(day, dt.time(0, 0), tz)

    def release(
        self,
        artist: Artist,
        title: str,
        *,
        release_at: dt.datetime,
        tz: str,
        colours: tuple[str, str],
        **fields,
    ) -> Release:
        local = release_at.astimezone(zoneinfo.ZoneInfo(tz))
        release, _ = Release.objects.update_or_create(
            artist=artist,
            title=title,
            defaults={"release_date": local.date(), "release_time": local.time(), "timezone": tz, **fields},
        )
        name = f"covers/{slugify(artist.name)}-{slugify(title)}.jpg"
        storage = release.cover.storage
        if release.cover.name != name or not storage.exists(name):
            if storage.exists(name):
                storage.delete(name)  # a leftover from an earlier database: redraw it under the same name
            cover = draw_cover(title, artist.name, *colours)
            release.cover.save(name.removeprefix("covers/"), ContentFile(cover), save=True)
        return release

    def campaign(self, slug: str, release: Release, **fields) -> Campaign:
        campaign, _ = Campaign.objects.update_or_create(
            slug=slug, defaults={"release": release, "save_release": True, **fields}
        )
        sync_schedule(campaign)  # at once, not on commit: the summary and the demo rely on it
        return campaign
