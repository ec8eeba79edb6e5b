"""Site-wide request guards, and the Content-Security-Policy header."""

from collections.abc import Callable

from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import default_config
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import reverse

# The admin turns `field__year=…` (date hierarchy, hand-edited links) into dates only when the query runs,
# so a year Python's dates can't hold is a 500 there, past the admin's own "bad filter" check.
DATE_PART_RANGES = {"__year": range(1, 10000), "__month": range(1, 13), "__day": range(1, 32)}


class RejectBadConsoleQueries:
    """In the console, a query string value PostgreSQL or Python's dates would refuse is a 400: a NUL character
    (PostgreSQL refuses NUL in text) or a year, month or day out of range. Fan pages clean their own parameters
    and are left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(reverse("admin:index")):
            for key, values in request.GET.lists():
                if any(problem(key, value) for value in values):
                    return HttpResponseBadRequest(
                        f"This address has a bad “{key[:40]}” value.", content_type="text/plain"
                    )
        return self.get_response(request)


def problem(key: str, value: str) -> bool:
    if "\x00" in key or "\x00" in value:
        return True
    for suffix, allowed in DATE_PART_RANGES.items():
        if key.endswith(suffix):
            return not (value.isascii() and value.isdigit() and len(value) <= 5 and int(value) in allowed)
    return False


class ContentSecurityPolicy(CSPMiddleware):
    """django-csp's middleware, with the console's own policy: settings.CONSOLE_CONTENT_SECURITY_POLICY under the
    admin's prefix, settings.CONTENT_SECURITY_POLICY everywhere else. A view's own csp_update (the MusicKit page)
    still applies on top; django-csp's documented way to vary the policy by path is this subclass."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and parts.config is None and request.path.startswith(reverse("admin:index")):
            parts.config = default_config(settings.CONSOLE_CONTENT_SECURITY_POLICY["DIRECTIVES"])
        return parts
