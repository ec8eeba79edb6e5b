"""Site-wide request guards."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse


class RejectNulInConsoleQueries:
    """A NUL character in the console's query string is a 400. The admin passes filter values to PostgreSQL,
    which refuses NUL in text (a DataError, so a 500). Fan pages clean their own parameters and are left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(reverse("admin:index")) and any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest("A NUL character is not allowed in an address.", content_type="text/plain")
        return self.get_response(request)
