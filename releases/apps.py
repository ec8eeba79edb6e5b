from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Artists, releases and campaigns"

    def ready(self) -> None:
        from releases import signals  # noqa: F401
