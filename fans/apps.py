from django.apps import AppConfig


class FansConfig(AppConfig):
    name = "fans"
    verbose_name = "Fans and consent"

    def ready(self) -> None:
        from fans import signals  # noqa: F401
