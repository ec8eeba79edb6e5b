"""Site-wide request guards."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
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
