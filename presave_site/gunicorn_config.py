"""gunicorn's configuration for this site: `gunicorn -c python:presave_site.gunicorn_config presave_site.wsgi`.

gunicorn writes its own access and error logs ("gunicorn.access", "gunicorn.error"), outside Django's LOGGING:
without this, `--access-logfile` would record every fan's revoke and privacy link and every OAuth callback's
`?code=…&state=…` in full. Its logger here runs each line through the same redaction as the site's logs.
"""

from gunicorn.glogging import Logger

from presave_site.log_filters import RedactSecrets


class RedactingLogger(Logger):
    """gunicorn's logger, its access and error lines redacted (presave_site/log_filters.py)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        # On the loggers, not their handlers: every handler gunicorn sets (a file, stdout, syslog) gets clean lines.
        for log in (self.access_log, self.error_log):
            if not any(isinstance(existing, RedactSecrets) for existing in log.filters):
                log.addFilter(RedactSecrets())


logger_class = RedactingLogger
