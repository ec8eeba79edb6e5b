"""Site-wide request guards, and the Content-Security-Policy header."""

from collections.abc import Callable

from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import default_config
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin

# A date part must be a number in its range: the admin turns `field__year=…` (date hierarchy, hand-edited links)
# into dates only when the query runs, so a year Python's dates can't hold is a 500 there, past the admin's own
# "bad filter" check.
DATE_PARTS = {
    "year": range(1, 10000),
    "iso_year": range(1, 10000),
    "month": range(1, 13),
    "day": range(1, 32),
    "week": range(1, 54),
    "week_day": range(1, 8),
    "iso_week_day": range(1, 8),
    "quarter": range(1, 5),
    "hour": range(24),
    "minute": range(60),
    "second": range(60),
}
DATE_TRANSFORMS = {"date": models.DateField(), "time": models.TimeField()}


class RejectBadConsoleQueries(MiddlewareMixin):
    """In the console, a query string value PostgreSQL or Python's dates would refuse is a 400 in words: a NUL
    character (PostgreSQL refuses NUL in text), any `__range` lookup (the console makes none, and a value with
    no comma is a 500), and on a change list a date, or a year, month, day… of one, that does not parse or is
    out of range (the admin would drop the filter, or fail). Fan pages clean their own parameters and are left
    alone. It checks in process_view, where the view's ModelAdmin (and so the model) is known. An object's key in
    the path with a NUL is a 400 too: Django Q's tasks have text keys, which the admin looks up as they are."""

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> HttpResponse | None:
        if not request.path.startswith(reverse("admin:index")):
            return None
        if "\x00" in request.path:
            return HttpResponseBadRequest(
                "This address holds a NUL character, which no object's key has. Go back to the list and pick the "
                "object there.",
                content_type="text/plain",
            )
        model_admin = getattr(view_func, "model_admin", None)  # ModelAdmin.get_urls marks its views so
        model = model_admin.model if model_admin is not None else None
        for key, values in request.GET.lists():
            if any(problem(key, value, model) for value in values):
                return HttpResponseBadRequest(
                    f"This address has a bad “{key[:40]}” value: a filter it can't use. Go back to the list and "
                    "pick the filter there.",
                    content_type="text/plain",
                )
        return None


def problem(key: str, value: str, model: type[models.Model] | None = None) -> bool:
    if "\x00" in key or "\x00" in value:
        return True
    parts = key.split(LOOKUP_SEP)
    if "range" in parts[1:]:
        return True
    field, lookups = date_field(model, parts) if model is not None else (None, [])
    if field is None:
        return False
    if lookups[-1:] == ["isnull"]:
        return False
    items = value.split(",") if lookups[-1:] == ["in"] else [value]
    transform = lookups[0] if lookups else None
    if transform in DATE_PARTS:
        return not all(is_number_in(item, DATE_PARTS[transform]) for item in items)
    return not all(parses(DATE_TRANSFORMS.get(transform, field), item) for item in items)


def date_field(model: type[models.Model], parts: list[str]) -> tuple[models.Field | None, list[str]]:
    """The date, time or timestamp field `parts` (a lookup split at `__`) names, following relations, and the
    transforms and lookups after it; or None when it names no such field."""
    opts = model._meta
    for position, part in enumerate(parts):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return None, []
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
        elif isinstance(field, (models.DateField, models.TimeField)):
            return field, parts[position + 1 :]
        else:
            return None, []
    return None, []


def is_number_in(value: str, allowed: range) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 5 and int(value) in allowed


def parses(field: models.Field, value: str) -> bool:
    try:
        return field.to_python(value) is not None
    except ValidationError:
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
