"""`python manage.py run_sandbox`: serve the service sandbox (delivery/sandbox/) for development and tests."""

from django.core.management.base import BaseCommand

from delivery.sandbox import server


class Command(BaseCommand):
    help = (
        "Run the service sandbox: Spotify under /spotify/accounts and /spotify/api, Deezer under /deezer/connect "
        "and /deezer/api, Apple Music under /apple_music/api with a MusicKit JS stand-in at "
        "/apple_music/musickit.js; login pages, fault injection and a JSON control API under /_sandbox/."
    )
    requires_system_checks = []  # a standalone server: it uses neither the database nor the project's apps

    def add_arguments(self, parser) -> None:
        server.add_arguments(parser)

    def handle(self, *args, **options) -> None:
        server.run_with(options, echo=self.stdout.write)
