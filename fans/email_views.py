"""The release-day email's endpoints, all under /e/: the open pixel, tracked clicks, and unsubscribe.

Each takes a signed token (fans/release_email.py); a bad token gets a plain 404 or, for the pixel, the same
pixel: nothing here redirects anywhere but to a campaign's own listening links. Each is rate limited per IP
(fans/ratelimits.py): the pixel and clicks as smart-link clicks, unsubscribing as the other writes.
"""

from __future__ import annotations

import base64

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from fans import release_email
from fans.ratelimits import click_rate, limited
from fans.views import allow

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1×1 transparent GIF


@allow("GET")
@limited(rate=click_rate, method=("GET",))
@never_cache
def email_open(request: HttpRequest, token: str) -> HttpResponse:
    release_email.record_open(token)
    return HttpResponse(PIXEL, content_type="image/gif")


@allow("GET")
@limited(rate=click_rate, method=("GET",))
@never_cache
def email_click(request: HttpRequest, token: str) -> HttpResponse:
    url = release_email.click_destination(token)
    if url is None:
        raise Http404("This link is not valid.")
    return HttpResponseRedirect(url)


@csrf_exempt  # the signed token is the authority; mailboxes' one-click unsubscribe (RFC 8058) POSTs without CSRF
@allow("GET", "POST")
@limited()
@never_cache
def email_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (mail scanners prefetch links, so it changes nothing); POST unsubscribes. Once unsubscribed, the
    link opened again says so, with the date, instead of asking again."""
    email = release_email.email_for_unsubscribe(token)
    if email is None:
        raise Http404("This unsubscribe link is not valid.")
    if request.method == "POST":
        release_email.unsubscribe(email)
        email.refresh_from_db()
    done = email.unsubscribed_at is not None
    context = {"email": email, "release": email.campaign.release, "token": token, "done": done}
    return render(request, "fans/unsubscribe.html", context)
