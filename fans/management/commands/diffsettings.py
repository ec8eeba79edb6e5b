"""Django's `diffsettings`, showing no secret: the values go through the error reports' filter
(presave_site/error_reports.py), so passwords (DATABASES, inside REDIS_URL and the like) and keys print as stars."""

from typing import Any

from django.core.management.commands import diffsettings

from presave_site.error_reports import SettingsFilter


class Shown:
    """A setting's value as printed (cleansed), compared with the default by its real value."""

    def __init__(self, value: Any, text: Any) -> None:
        self.value, self.text = value, text

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, Shown) else other)

    def __str__(self) -> str:
        return str(self.text)


def shown(settings: Any) -> dict[str, Shown]:
    """Django's `module_to_dict` (each setting's repr), with the printed repr cleansed."""
    reporter_filter = SettingsFilter()
    return {
        key: Shown(value, repr(reporter_filter.cleanse_setting(key, getattr(settings, key))))
        for key, value in diffsettings.module_to_dict(settings).items()
    }


class Command(diffsettings.Command):
    def handle(self, **options):
        from django.conf import Settings, global_settings, settings

        if not settings.configured:
            settings._setup()
        user_settings = shown(settings._wrapped)
        default_settings = shown(Settings(options["default"]) if options["default"] else global_settings)
        output = self.output_unified if options["output"] == "unified" else self.output_hash
        return "\n".join(output(user_settings, default_settings, **options))
