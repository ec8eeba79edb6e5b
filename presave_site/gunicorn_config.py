"""gunicorn's configuration for this site: `gunicorn -c python:presave_site.gunicorn_config presave_site.wsgi`.

gunicorn writes its own access and error logs ("gunicorn.access", "gunicorn.error"), outside Django's LOGGING:
without this, `--access-logfile` would record every fan's revoke and privacy link and every OAuth callback's
`?code=…&state=…` in full. Its logger here runs each line through the same redaction as the site's logs.

gunicorn (25.1 on) opens a control socket for `gunicornc`, by default at one path per user
($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second instance on the machine would take it
over, and `gunicornc` would reload or scale the wrong one. Here each instance's is named after what it binds,
in that directory (`gunicorn-127.0.0.1-8000.ctl`), unless `--control-socket` names one.
"""

import os
import re

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


def on_starting(server) -> None:
    """Give the instance its own control socket (see the module's docstring) when none was asked for."""
    cfg = server.cfg
    setting = cfg.settings["control_socket"]
    if cfg.control_socket == setting.default:
        cfg.set("control_socket", instance_control_socket(setting.default, cfg.bind))


def instance_control_socket(default: str, bind: list[str]) -> str:
    """The control socket path of the instance bound to `bind`, beside gunicorn's default one."""
    name = re.sub(r"[^A-Za-z0-9.]+", "-", ",".join(bind)).strip("-")[:60]
    return os.path.join(os.path.dirname(default), f"gunicorn-{name}.ctl")
