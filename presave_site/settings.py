"""Settings, read once from the environment (and an optional `.env` file) with django-environ.

Every setting has a safe default for the demo. With DEBUG off (production) a missing secret stops
the process at start-up instead of falling back to a development value.
"""

import logging
import re
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from fans import addresses
from presave_site import dev_defaults

BASE_DIR = Path(__file__).resolve().parent.parent


def url_parts(url: str) -> SplitResult | None:
    """`url` split, or None when it does not parse, its port included (no number, or out of range)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    return parts


class Env(environ.Env):
    """django-environ, where a number that doesn't parse, or is below what makes sense, stops the start with a
    message naming the setting (instead of a bare ValueError, or a nonsense value taken silently)."""

    def int(self, var, default=environ.Env.NOTSET, *, minimum=0):
        return self._number(int, var, default, minimum)

    def float(self, var, default=environ.Env.NOTSET, *, minimum=0.0):
        return self._number(float, var, default, minimum)

    def _number(self, cast, var, default, minimum):
        try:
            value = self.get_value(var, cast=cast, default=default)
        except ValueError:
            raise ImproperlyConfigured(
                f"{var} must be a whole number" if cast is int else f"{var} must be a number"
            ) from None
        if value < minimum:
            raise ImproperlyConfigured(f"{var} must be at least {minimum}, not {value}.")
        return value

    def bool(self, var, default=environ.Env.NOTSET):
        """true/false (or yes/no, on/off, 1/0): anything else stops the start, where django-environ would read
        a typo as false (HTTPS=ture: no secure cookies in production)."""
        value = self.get_value(var, cast=str, default=default)
        if isinstance(value, bool):
            return value
        word = value.strip().lower()
        if word not in BOOLEAN_WORDS:
            raise ImproperlyConfigured(f"{var} must be true or false, not {value[:20]!r}.")
        return BOOLEAN_WORDS[word]

    def cookie_name(self, var, default):
        """A cookie's name: letters, digits, "_", "-" and "." only (a space or ";" would break the header)."""
        value = self.str(var, default=default)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ImproperlyConfigured(f"{var} must be letters, digits, _, - or . only, like {default}.")
        return value

    def base_url(self, var, default):
        """An http(s) base address without its trailing slash; anything else stops the start naming it."""
        value = self.str(var, default=default).rstrip("/")
        parts = url_parts(value)
        if not parts or parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ImproperlyConfigured(f"{var} must be an http:// or https:// address, like {default}.")
        return value

    def service_url(self, var, default, *, https: bool):
        """A streaming service's base address (`base_url`), which must be https:// when HTTPS is on: our app's
        client secret, fans' authorization codes and their tokens travel to it.

        A loopback host may stay http://: that is the sandbox (delivery/sandbox) in a production-like run on one
        machine (the tests' processes with DEBUG off, the benchmarks), and nothing sent there leaves the machine.
        """
        value = self.base_url(var, default)
        parts = urlsplit(value)
        if https and parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
            raise ImproperlyConfigured(
                f"{var} must be an https:// address when HTTPS is on (our client secret and fans' tokens go "
                "there); plain http:// only to 127.0.0.1, localhost or ::1."
            )
        return value

    def redis_url(self, var):
        """A Redis address (redis://, rediss:// with TLS, unix://), or "" for none; anything else stops the start."""
        value = self.str(var, default="")
        parts = url_parts(value)
        if value and (not parts or parts.scheme not in {"redis", "rediss", "unix"} or parts.port == 0):
            raise ImproperlyConfigured(f"{var} must look like redis://host:6379/0 (rediss:// with TLS), or be empty.")
        return value

    def database(self, var, default):
        """DATABASE_URL for PostgreSQL (production, the tests) or SQLite (the demo). The value is never shown in
        a message: it may hold a password."""
        url = self.str(var, default=default)
        if urlsplit(url).scheme not in DATABASE_SCHEMES:
            raise ImproperlyConfigured(
                f"{var} must look like postgres://user:password@host:5432/name (or sqlite:///path for the demo)."
            )
        try:
            config = self.db_url_config(url)
        except ValueError:  # a port that is no number or out of range
            raise ImproperlyConfigured(f"{var} has a port that is not a number from 1 to 65535.") from None
        if not config.get("NAME"):
            raise ImproperlyConfigured(f"{var} names no database (postgres://user@host:5432/name).")
        return config


BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0", ""), False),
}
DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


env = Env()
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)


def env_or_file(name: str, default: str = "") -> str:
    """`NAME`, or the content of the file named by `NAME_FILE` (a secret mounted by Docker, systemd or Kubernetes).

    Every `<NAME>_FILE` setting is read here: a file that can't be read, or is empty, stops the start naming it.
    """
    file_name = env.str(f"{name}_FILE", default="")
    if not file_name:
        return env.str(name, default=default)
    try:
        value = Path(file_name).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is not UTF-8 text.") from None
    if not value:
        raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is empty.")
    return value


def secret(name: str, dev_default: str) -> str:
    """A secret from `NAME` or the file named by `NAME_FILE`; required unless DEBUG is on."""
    if value := env_or_file(name):
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (or {name}_FILE naming a file).")


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = secret("SECRET_KEY", dev_defaults.SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
PUBLIC_BASE_URL = env.base_url("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
HTTPS = env.bool("HTTPS", default=not DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "csp",
    "django_ratelimit",
    "releases",
    "fans",
    "delivery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "presave_site.middleware.ContentSecurityPolicy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "presave_site.middleware.RejectBadConsoleQueries",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "presave_site.urls"
WSGI_APPLICATION = "presave_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'presave.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's web server, worker and scheduler share one file: take the write lock up front, and wait.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Where a sign-in goes when its `next` is missing or off site: the console's index. Django's default,
# /accounts/profile/, is a page this project doesn't have.
LOGIN_REDIRECT_URL = "admin:index"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# --- Security -------------------------------------------------------------------------------------
# A browser keeps cookies per host, whatever the port: two sites on one host (two demos; run_demo names the cookies
# after the web port) would share these and log each other's console out.
SESSION_COOKIE_NAME = env.cookie_name("SESSION_COOKIE_NAME", default="sessionid")
CSRF_COOKIE_NAME = env.cookie_name("CSRF_COOKIE_NAME", default="csrftoken")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # the OAuth callback is a top-level GET from the service: Lax keeps the session
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS and env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])
CSRF_FAILURE_VIEW = "fans.views.csrf_failed"  # the 403 problem page; the console keeps Django's own

SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content Security Policy (django-csp): the public pages run no inline script or style; everything comes from
# our own origin (static files, uploaded covers), or MEDIA_URL's origin when covers live on a CDN.
# No form-action: browsers apply it to the redirect after a form POST, and the pre-save form's POST is
# answered with a redirect to the streaming service's sign-in page. The staff console has its own policy (below).
_MEDIA_ORIGIN = "/".join(MEDIA_URL.split("/")[:3]) if MEDIA_URL.startswith(("https://", "http://")) else ""
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"] + ([_MEDIA_ORIGIN] if _MEDIA_ORIGIN else []),
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    },
}
# The staff console (Django's admin under /admin/, presave_site.middleware.ContentSecurityPolicy) is stricter:
# only our own scripts, styles and images (covers: MEDIA_URL's origin), requests only to us (htmx progress,
# autocomplete), forms posted only to us, nothing else loaded. Django 5.2's admin templates need no inline script
# or style, but one: admin/change_list.html writes an inline <style> for a ModelAdmin with both actions_on_top
# and actions_on_bottom False. None of ours does; one that did would need that style's 'sha256-…' hash in
# style-src (tests/browser/test_console.py visits every change list and fails on any refusal).
CONSOLE_CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"] + ([_MEDIA_ORIGIN] if _MEDIA_ORIGIN else []),
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Token vault ----------------------------------------------------------------------------------
# "kid:base64-of-32-bytes,kid2:…" — the first key encrypts, every key decrypts. Rotation (README: Security):
# prepend a new one and restart every process, `manage.py rewrap_tokens` until `--check` finds none left, and
# drop the old one PRIVACY_LINK_MAX_AGE later (it sealed the privacy links mailed to addresses).
TOKEN_ENCRYPTION_KEYS = secret("TOKEN_ENCRYPTION_KEYS", dev_defaults.TOKEN_ENCRYPTION_KEYS)

# --- Streaming services ---------------------------------------------------------------------------
SERVICE_TIMEOUT_SECONDS = env.float("SERVICE_TIMEOUT_SECONDS", default=10.0, minimum=0.01)
SPOTIFY_CLIENT_ID = env.str("SPOTIFY_CLIENT_ID", default="")
SPOTIFY_CLIENT_SECRET = secret("SPOTIFY_CLIENT_SECRET", "") if SPOTIFY_CLIENT_ID else ""
SPOTIFY_ENABLED = env.bool("SPOTIFY_ENABLED", default=bool(SPOTIFY_CLIENT_ID))
SPOTIFY_ACCOUNTS_URL = env.service_url("SPOTIFY_ACCOUNTS_URL", default="https://accounts.spotify.com", https=HTTPS)
SPOTIFY_API_URL = env.service_url("SPOTIFY_API_URL", default="https://api.spotify.com", https=HTTPS)
# "library": the unified PUT /v1/me/library (February 2026); "legacy": /v1/me/albums, /tracks, /following.
SPOTIFY_LIBRARY_API = env.str("SPOTIFY_LIBRARY_API", default="library")
# Spotify limits calls per app over a rolling 30-second window and does not publish the number: every worker
# together stays under this many calls per window (delivery/ratelimit.py), pacing evenly across it.
SPOTIFY_RATE_LIMIT = env.int("SPOTIFY_RATE_LIMIT", default=600)
SPOTIFY_RATE_WINDOW_SECONDS = env.float("SPOTIFY_RATE_WINDOW_SECONDS", default=30.0, minimum=0.01)
if SPOTIFY_LIBRARY_API not in {"library", "legacy"}:
    raise ImproperlyConfigured("SPOTIFY_LIBRARY_API must be 'library' or 'legacy'.")
if SPOTIFY_ENABLED and not (SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET):
    raise ImproperlyConfigured("SPOTIFY_ENABLED needs SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.")

# Deezer accepts no new app registrations (since about mid-2024): the service is enabled only when an existing
# app's credentials are configured. Its offline_access tokens do not expire, so there is no refresh flow.
DEEZER_APP_ID = env.str("DEEZER_APP_ID", default="")
DEEZER_SECRET = secret("DEEZER_SECRET", "") if DEEZER_APP_ID else ""
DEEZER_ENABLED = bool(DEEZER_APP_ID and DEEZER_SECRET)
DEEZER_CONNECT_URL = env.service_url("DEEZER_CONNECT_URL", default="https://connect.deezer.com", https=HTTPS)
DEEZER_API_URL = env.service_url("DEEZER_API_URL", default="https://api.deezer.com", https=HTTPS)
# Deezer's simple API quota: 50 requests per 5 seconds (error code 4 beyond it).
DEEZER_RATE_LIMIT = env.int("DEEZER_RATE_LIMIT", default=50)
DEEZER_RATE_WINDOW_SECONDS = env.float("DEEZER_RATE_WINDOW_SECONDS", default=5.0, minimum=0.01)

# Apple Music: a MusicKit private key (.p8, ES256) signs the developer token (delivery/services/apple_music.py);
# fans authorize with MusicKit JS on our own page (fans/musickit.py). Enabled when the key is configured.
APPLE_MUSIC_KEY_ID = env.str("APPLE_MUSIC_KEY_ID", default="")
APPLE_MUSIC_TEAM_ID = env.str("APPLE_MUSIC_TEAM_ID", default="")
APPLE_MUSIC_PRIVATE_KEY = secret("APPLE_MUSIC_PRIVATE_KEY", "") if APPLE_MUSIC_KEY_ID else ""
APPLE_MUSIC_ENABLED = bool(APPLE_MUSIC_KEY_ID and APPLE_MUSIC_TEAM_ID and APPLE_MUSIC_PRIVATE_KEY)
APPLE_MUSIC_API_URL = env.service_url("APPLE_MUSIC_API_URL", default="https://api.music.apple.com", https=HTTPS)
MUSICKIT_JS_URL = env.service_url(
    "MUSICKIT_JS_URL", default="https://js-cdn.music.apple.com/musickit/v3/musickit.js", https=HTTPS
)
# Origins the MusicKit page may also talk to (MusicKit JS calls Apple's APIs and opens its sign-in window).
MUSICKIT_CSP_ORIGINS = env.list("MUSICKIT_CSP_ORIGINS", default=["https://*.apple.com"])
# The developer token's lifetime (Apple allows at most 15,777,000 s, six months); renewed this long before expiry.
APPLE_MUSIC_TOKEN_SECONDS = env.int("APPLE_MUSIC_TOKEN_SECONDS", default=12 * 3600, minimum=1)
APPLE_MUSIC_TOKEN_RENEW_SECONDS = env.int("APPLE_MUSIC_TOKEN_RENEW_SECONDS", default=3600)
# Releases are looked up (UPC/ISRC) in each fan's storefront; this one when the fan's market is unknown.
APPLE_MUSIC_STOREFRONT = env.str("APPLE_MUSIC_STOREFRONT", default="us").lower()
if not re.fullmatch(r"[a-z]{2}", APPLE_MUSIC_STOREFRONT):
    raise ImproperlyConfigured("APPLE_MUSIC_STOREFRONT must be a two-letter storefront such as us or gb.")
# Apple does not publish its limit; every worker together stays under this many calls per window.
APPLE_MUSIC_RATE_LIMIT = env.int("APPLE_MUSIC_RATE_LIMIT", default=300)
APPLE_MUSIC_RATE_WINDOW_SECONDS = env.float("APPLE_MUSIC_RATE_WINDOW_SECONDS", default=30.0, minimum=0.01)
if not 0 < APPLE_MUSIC_TOKEN_SECONDS <= 15_777_000:
    raise ImproperlyConfigured("APPLE_MUSIC_TOKEN_SECONDS must be between 1 and 15777000 (six months).")
if not 0 <= APPLE_MUSIC_TOKEN_RENEW_SECONDS < APPLE_MUSIC_TOKEN_SECONDS:
    raise ImproperlyConfigured("APPLE_MUSIC_TOKEN_RENEW_SECONDS must be less than APPLE_MUSIC_TOKEN_SECONDS.")

# The proxy header carrying the visitor's country (Cloudflare's CF-IPCountry); "" to ignore headers.
COUNTRY_HEADER = env.str("COUNTRY_HEADER", default="CF-IPCountry")

# --- Delivery -------------------------------------------------------------------------------------
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=5, minimum=1)
DELIVERY_RETRY_BASE_SECONDS = env.float("DELIVERY_RETRY_BASE_SECONDS", default=2.0)
DELIVERY_MAX_RETRY_AFTER_SECONDS = env.float("DELIVERY_MAX_RETRY_AFTER_SECONDS", default=120.0)
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=120, minimum=1)
# How long a run waits for the database to come back (a restart, a failover) before it gives up; at most half
# the lease, so that the batch it holds is not taken over meanwhile.
DELIVERY_DATABASE_OUTAGE_SECONDS = env.float("DELIVERY_DATABASE_OUTAGE_SECONDS", default=60.0, minimum=0)
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=1000, minimum=1)  # subscriptions claimed at once
DELIVERY_CONCURRENCY = env.int("DELIVERY_CONCURRENCY", default=128, minimum=1)  # calls in flight per run
# How often a run writes the outcomes of the fans done since, while its batch's calls are out: a worker killed
# mid-batch repeats the calls in flight and the fans done in the last this-many seconds, not its whole batch.
DELIVERY_RECORD_SECONDS = env.float("DELIVERY_RECORD_SECONDS", default=0.5, minimum=0.01)
DELIVERY_PERMIT_BLOCK = env.int("DELIVERY_PERMIT_BLOCK", default=32, minimum=1)  # rate-limit permits taken at once
DELIVERY_PARALLEL_RUNS = env.int("DELIVERY_PARALLEL_RUNS", default=2, minimum=1)  # runs one campaign is split into
# How long one minute of a campaign's firing window (Campaign.spread_minutes) lasts: 60; tests shorten it.
DELIVERY_SPREAD_MINUTE_SECONDS = env.float("DELIVERY_SPREAD_MINUTE_SECONDS", default=60.0, minimum=0.01)
DELIVERY_AVAILABILITY_RECHECK_SECONDS = env.int("DELIVERY_AVAILABILITY_RECHECK_SECONDS", default=900)
DELIVERY_AVAILABILITY_WAIT_HOURS = env.int("DELIVERY_AVAILABILITY_WAIT_HOURS", default=72)

# --- django-q2 ------------------------------------------------------------------------------------
REDIS_URL = env.redis_url("REDIS_URL")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="presave"),
    "workers": env.int("Q_WORKERS", default=2, minimum=1),
    "timeout": env.int("Q_TIMEOUT", default=1800, minimum=1),
    "retry": env.int(
        "Q_RETRY", default=1900, minimum=1
    ),  # > timeout: a task is handed out again only after it timed out
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=0),
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "poll": env.float("Q_POLL", default=0.5, minimum=0.01),
    "guard_cycle": env.float("Q_GUARD_CYCLE", default=0.5),
    "scheduler": True,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be greater than Q_TIMEOUT.")

# --- Caches, page cache and rate limits ---------------------------------------------------------------
# `default` is shared by every server process: Redis when REDIS_URL is set, else the database (run
# `manage.py createcachetable` once). django-ratelimit counts there. It flags the database cache (its
# increment is a read then a write, so concurrent requests may under-count a little) and Django's own Redis
# backend (not on its list, but its increment is Redis's atomic INCR): both are silenced below on purpose.
# `pages` holds the campaign pages' data (fans/pagecache.py): Redis when set, so staff edits reach every
# process at once; otherwise each process's memory, where other processes see an edit within
# PAGE_CACHE_SECONDS.
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
        "pages": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pages",
        },
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "presave_cache"},
        "pages": {"BACKEND": "fans.pagecache.ObjectCache", "LOCATION": "pages"},
    }
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=60)
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
# Behind a proxy, the client's address is in a header, e.g. HTTP_CF_CONNECTING_IP or HTTP_X_REAL_IP.
RATELIMIT_IP_META_KEY = env.str("RATELIMIT_IP_META_KEY", default="") or None
if RATELIMIT_IP_META_KEY and not re.fullmatch(r"HTTP_[A-Z0-9_]+|REMOTE_ADDR", RATELIMIT_IP_META_KEY):
    raise ImproperlyConfigured(
        f"RATELIMIT_IP_META_KEY={RATELIMIT_IP_META_KEY[:40]!r}: name the header as Django's request.META does, "
        "HTTP_ and the header's name in capitals with _ for -: X-Real-IP is HTTP_X_REAL_IP."
    )
if RATELIMIT_IP_META_KEY == "HTTP_X_FORWARDED_FOR":
    raise ImproperlyConfigured(
        "RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR: that header lists one address per proxy, and a client can "
        "add its own; use a header your proxy sets to the client's address alone, e.g. HTTP_X_REAL_IP or "
        "HTTP_CF_CONNECTING_IP."
    )
FANS_WRITE_RATE = env.str("FANS_WRITE_RATE", default="20/m")  # pre-save, email sign-up, revoke, erase: per IP
FANS_CLICK_RATE = env.str("FANS_CLICK_RATE", default="120/m")  # smart-link clicks, callbacks, exports: per IP
ADMIN_LOGIN_RATE = env.str("ADMIN_LOGIN_RATE", default="10/m")  # console sign-in attempts: per IP
for _name in ("FANS_WRITE_RATE", "FANS_CLICK_RATE", "ADMIN_LOGIN_RATE"):
    # django-ratelimit reads the rate at the first request: a malformed one would be a 500 on every write.
    if not re.fullmatch(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]", globals()[_name]):
        raise ImproperlyConfigured(
            f"{_name} looks like 20/m (a count of 1 or more per s, m, h or d; 5/10m for per 10 minutes)."
        )
# Page views are written in batches of this many, or when the oldest waiting is this old (fans/tracking.py).
# 200: a COPY's statement-level tally trigger costs PostgreSQL ~31 µs a view in batches of 50, ~17 in 200, ~14
# in 500 (measured alone); a crashed process loses the views it had not written yet, at most a batch or
# FUNNEL_FLUSH_SECONDS' worth.
FUNNEL_BATCH_SIZE = env.int("FUNNEL_BATCH_SIZE", default=200, minimum=1)
FUNNEL_FLUSH_SECONDS = env.float("FUNNEL_FLUSH_SECONDS", default=5.0)
PRIVACY_LINK_MAX_AGE = env.int("PRIVACY_LINK_MAX_AGE", default=7 * 86_400, minimum=60)  # seconds a privacy link works
# Seconds the link that confirms an email-only sign-up works (fans/signups.py: double opt-in).
EMAIL_CONFIRM_LINK_MAX_AGE = env.int("EMAIL_CONFIRM_LINK_MAX_AGE", default=14 * 86_400, minimum=60)
# How long personal data is kept once it has served (fans/retention.py, a daily task; the privacy notice says so).
RETENTION_CONSENT_NETWORK_DAYS = env.int("RETENTION_CONSENT_NETWORK_DAYS", default=90, minimum=1)  # after release
RETENTION_SETTLED_TOKEN_DAYS = env.int("RETENTION_SETTLED_TOKEN_DAYS", default=14, minimum=1)  # Retry failed's time
RETENTION_VISITOR_HASH_DAYS = env.int("RETENTION_VISITOR_HASH_DAYS", default=30, minimum=1)
RETENTION_ATTEMPT_DAYS = env.int("RETENTION_ATTEMPT_DAYS", default=180, minimum=1)

# --- Email (the release-day email, fans/release_email.py) ---------------------------------------------
# EMAIL_URL picks the backend: consolemail:// (the demo: printed), filemail:///path, or in production
# smtp+tls://user:password@host:587 (django-environ's email_url). A password may come from EMAIL_URL_FILE.
_email_url = env_or_file("EMAIL_URL", default="consolemail://")
try:
    vars().update(env.email_url_config(_email_url))
except (ValueError, KeyError, ImproperlyConfigured):  # an unknown scheme, a port that is no number
    raise ImproperlyConfigured(
        "EMAIL_URL must look like smtp+tls://user:password@host:587, consolemail:// or filemail:///path."
    ) from None
if _email_url.startswith("filemail:"):  # django-environ drops the path's leading slash: filemail:///var/mail
    EMAIL_FILE_PATH = "/" + EMAIL_FILE_PATH.lstrip("/")  # noqa: F821 - set by the update above
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Pre-save <noreply@localhost>")
# Staff addresses that get the release-day report when a campaign's delivery is done (releases/report.py).
DELIVERY_REPORT_EMAILS = [a.strip() for a in env.list("DELIVERY_REPORT_EMAILS", default=[]) if a.strip()]
for _address in DELIVERY_REPORT_EMAILS:
    if not addresses.is_valid(_address):
        raise ImproperlyConfigured(f"DELIVERY_REPORT_EMAILS: {_address[:80]!r} is not an email address.")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20, minimum=1)
# Who answers for fans' data, as the privacy notice names them (the data controller: the label's legal name and
# postal address) and where fans write about it. `check --deploy` warns while either is blank (fans.W007).
PRIVACY_CONTROLLER = env.str("PRIVACY_CONTROLLER", default="").strip()
PRIVACY_CONTACT_EMAIL = env.str("PRIVACY_CONTACT_EMAIL", default="").strip()
if PRIVACY_CONTACT_EMAIL and not addresses.is_valid(PRIVACY_CONTACT_EMAIL):
    raise ImproperlyConfigured(f"PRIVACY_CONTACT_EMAIL: {PRIVACY_CONTACT_EMAIL[:80]!r} is not an email address.")

# Error reports (the DEBUG page, admins' error emails) hide passwords inside URLs too, not only settings named
# like a secret: REDIS_URL, the caches' and the task queue's Redis address.
DEFAULT_EXCEPTION_REPORTER_FILTER = "presave_site.error_reports.SettingsFilter"

# --- Logging: nothing that looks like a token or an authorization code reaches a log line. -------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "presave_site.log_filters.RedactSecrets"},
        "refusals_without_traceback": {"()": "presave_site.log_filters.RefusalsWithoutTraceback"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"], "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default logging gives `django` a console handler of its own (with DEBUG on) that this filter
        # is not on: none here, so its lines reach the root's handler above, redacted, once.
        "django": {"handlers": [], "propagate": True},
        "django.request": {"filters": ["refusals_without_traceback"]},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
