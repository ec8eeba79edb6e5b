from django.apps import AppConfig


class FansConfig(AppConfig):
    name = "fans"
    verbose_name = "Fans and consent"

    def ready(self) -> None:
        from django.conf import settings

        from fans import checks, signals, vault  # noqa: F401

        # Malformed keys stop the process at start-up (web and workers), not at a fan's first sign-in.
        vault.parse_keys(settings.TOKEN_ENCRYPTION_KEYS)
