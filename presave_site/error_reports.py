"""What Django's error reports (the DEBUG page, the admins' error emails) and `manage.py diffsettings` show of
the settings: Django hides settings named like a secret (…PASSWORD, …KEY, …TOKEN); this also hides the password
inside a URL (REDIS_URL, the caches' and the task queue's Redis LOCATION), whatever the setting is called."""

from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from presave_site.log_filters import redact_url_password


class SettingsFilter(SafeExceptionReporterFilter):
    """DEFAULT_EXCEPTION_REPORTER_FILTER."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        value = super().cleanse_setting(key, value)  # recurses into dicts and lists through this method
        return redact_url_password(value) if isinstance(value, str) else value
