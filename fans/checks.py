"""Deployment checks for the fan pages (`manage.py check --deploy`)."""

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

from fans import vault
from presave_site import dev_defaults


@register(Tags.security, deploy=True)
def rate_limits_see_the_fans_address(app_configs, **kwargs) -> list[Warning]:
    """Behind a proxy every request comes from the proxy's address: without the header naming the fan's own,
    the per-IP limits (FANS_WRITE_RATE) would be shared by every fan, and a busy release day would be 429s."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not settings.RATELIMIT_IP_META_KEY:
        return [
            Warning(
                "BEHIND_TLS_PROXY is on but RATELIMIT_IP_META_KEY is not set: every fan would share the proxy's "
                "address, and so one rate limit.",
                hint="Set RATELIMIT_IP_META_KEY to the header your proxy puts the client's address in, "
                "e.g. HTTP_X_REAL_IP or HTTP_CF_CONNECTING_IP.",
                id="fans.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def email_goes_somewhere(app_configs, **kwargs) -> list[Warning]:
    """The default EMAIL_URL (consolemail://, the demo's) prints every email to the process's output: in
    production that is fans' addresses and their private links (privacy, unsubscribe) in the logs."""
    if settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
        return [
            Warning(
                "EMAIL_URL is consolemail:// (the default): every email, with fans' addresses and their private "
                "links, would be printed to the logs instead of sent.",
                hint="Set EMAIL_URL to your mail server, e.g. smtp+tls://user:password@host:587 (or EMAIL_URL_FILE).",
                id="fans.W002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def public_address_is_https(app_configs, **kwargs) -> list[Warning]:
    """PUBLIC_BASE_URL builds the OAuth redirect URIs and every link in emails: with HTTPS on, an http:// one
    sends fans' authorization codes, revoke and privacy links over plain HTTP (or, redirected, breaks the
    services' exact-match redirect URI)."""
    if settings.HTTPS and not settings.PUBLIC_BASE_URL.startswith("https://"):
        return [
            Warning(
                "HTTPS is on but PUBLIC_BASE_URL is not an https:// address: OAuth redirect URIs and the links in "
                "fans' emails (revoke, privacy) would be plain http://.",
                hint="Set PUBLIC_BASE_URL to the site's https:// origin, e.g. https://presave.example.com.",
                id="fans.W003",
            )
        ]
    return []


SERVICE_URL_SETTINGS = (
    "SPOTIFY_ACCOUNTS_URL",
    "SPOTIFY_API_URL",
    "DEEZER_CONNECT_URL",
    "DEEZER_API_URL",
    "APPLE_MUSIC_API_URL",
    "MUSICKIT_JS_URL",
)


def is_loopback(url: str) -> bool:
    """Whether `url`'s host is this machine: localhost (or a name under .localhost), 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.security, deploy=True)
def services_are_not_the_sandbox(app_configs, **kwargs) -> list[Warning]:
    """A service's base address on this machine is the sandbox (delivery/sandbox): fans would sign in to a fake
    Spotify, Deezer or Apple Music and nothing would be saved. Settings allow it with DEBUG off (the tests and the
    benchmarks run that way); a site that is deployed must not."""
    if settings.DEBUG:
        return []
    return [
        Warning(
            f"{name} points at this machine ({urlsplit(getattr(settings, name)).hostname}): that is the sandbox, "
            "for demos and tests; fans' sign-ins and release-day saves would go to it, not to the real service.",
            hint=f"Remove {name} from the settings (its default is the real service's https:// address).",
            id="fans.W004",
        )
        for name in SERVICE_URL_SETTINGS
        if is_loopback(getattr(settings, name))
    ]


@register(Tags.security, deploy=True)
def secrets_are_not_the_development_ones(app_configs, **kwargs) -> list[Warning]:
    """The development SECRET_KEY and token key (presave_site/dev_defaults.py) are public, in this repository:
    with them anyone can sign a fan's privacy link or session, or open every stored token. Set as values they
    start with DEBUG off like any other (copied from a laptop's .env, say)."""
    if settings.DEBUG:
        return []
    warnings = []
    if settings.SECRET_KEY == dev_defaults.SECRET_KEY:
        warnings.append(
            Warning(
                "SECRET_KEY is the development one (presave_site/dev_defaults.py), which anyone can read: fans' "
                "signed links and sessions could be forged.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random string of your own.",
                id="fans.W005",
            )
        )
    development_key = dict(vault.parse_keys(dev_defaults.TOKEN_ENCRYPTION_KEYS))
    if set(dict(vault.parse_keys(settings.TOKEN_ENCRYPTION_KEYS)).values()) & set(development_key.values()):
        warnings.append(
            Warning(
                "TOKEN_ENCRYPTION_KEYS holds the development key (presave_site/dev_defaults.py), which anyone can "
                "read: fans' stored tokens could be opened by whoever gets a copy of the database.",
                hint="Put a key of your own first (the README's Key rotation), run manage.py rewrap_tokens, then "
                "drop the development one.",
                id="fans.W006",
            )
        )
    return warnings


@register(Tags.security, deploy=True)
def privacy_notice_names_who_answers(app_configs, **kwargs) -> list[Warning]:
    """The privacy notice must say who is responsible for what it describes and how to reach them: without
    PRIVACY_CONTROLLER and PRIVACY_CONTACT_EMAIL it names no one, and fans have nowhere to send a question or a
    request about their data."""
    missing = [name for name in ("PRIVACY_CONTROLLER", "PRIVACY_CONTACT_EMAIL") if not getattr(settings, name)]
    if not missing:
        return []
    return [
        Warning(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: the privacy notice names no "
            "one who answers for fans' data, and no address to write to about it.",
            hint="Set PRIVACY_CONTROLLER to the label's legal name and postal address, and PRIVACY_CONTACT_EMAIL "
            "to the address that answers privacy questions.",
            id="fans.W007",
        )
    ]
