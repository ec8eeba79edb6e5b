"""Rate limits on the endpoints that write (and the console's sign-in), per client IP, counted by django-ratelimit
on the shared `default` cache; over the limit, the 429 problem page says how long to wait, and so does its
Retry-After header: the time left in the window that was used up (django-ratelimit's `get_usage`), so a limit per
hour is not answered "try again in a minute"."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

from fans.errors import TooManyRequests
from fans.geo import rate_limit_key

UNKNOWN_WAIT_SECONDS = 60  # the cache could not count (django-ratelimit then refuses): try again in a minute


def write_rate(group: str, request: HttpRequest) -> str:
    return settings.FANS_WRITE_RATE


def click_rate(group: str, request: HttpRequest) -> str:
    return settings.FANS_CLICK_RATE


def admin_login_rate(group: str, request: HttpRequest) -> str:
    return settings.ADMIN_LOGIN_RATE


def limited(rate: Callable[[str, HttpRequest], str] = write_rate, method=("POST",)):
    """Limit a view to `rate` per client IP (settings.RATELIMIT_IP_META_KEY says where the IP is), for requests
    with one of `method`; a request over it gets the 429 page and the view is not run."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            usage = get_usage(request, fn=view, key=rate_limit_key, rate=rate, method=list(method), increment=True)
            if usage is not None and usage["should_limit"]:
                return too_many_requests(request, usage["time_left"])
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def too_many_requests(request: HttpRequest, seconds_left: int) -> HttpResponse:
    seconds = seconds_left if seconds_left > 0 else UNKNOWN_WAIT_SECONDS
    problem = TooManyRequests(
        f"Lots of requests came from your connection in a short time, so we paused it. {wait_words(seconds)}, "
        "then try again. Nothing you did before this was lost."
    )
    response = render(request, "fans/problem.html", {"problem": problem}, status=problem.status)
    response["Retry-After"] = str(seconds)
    return response


def wait_words(seconds: int) -> str:
    """ "Wait a minute", "Wait 5 minutes", "Wait 2 hours": rounded up, so the fan who waits that long gets in."""
    if seconds <= 60:
        return "Wait a minute"
    minutes = -(-seconds // 60)
    if minutes < 120:
        return f"Wait {minutes} minutes"
    hours = -(-minutes // 60)
    if hours < 48:
        return f"Wait {hours} hours"
    return f"Wait {-(-hours // 24)} days"
