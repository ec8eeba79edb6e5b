"""The fans' pages. Thin: each view asks fans.authorization, fans.revocation or fans.pages, then renders.

Every problem of the flow is a FanFlowError, shown by templates/fans/problem.html with its own status.
"""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from fans import authorization, pages, revocation
from fans.errors import FanFlowError
from fans.geo import request_country


def shows_problems(view):
    """Render a FanFlowError raised by `view` as the problem page, with the error's status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except FanFlowError as problem:
            return render(request, "fans/problem.html", {"problem": problem}, status=problem.status)

    return wrapper


@require_GET
@shows_problems
def campaign(request: HttpRequest, slug: str) -> HttpResponse:
    context = pages.campaign_context(authorization.visible_campaign(slug))
    return render(request, "fans/campaign.html", context)


@require_POST
@shows_problems
def presave(request: HttpRequest, slug: str, service: str) -> HttpResponse:
    url = authorization.start(
        request.session,
        slug=slug,
        service_key=service,
        email_opt_in=request.POST.get("email_opt_in") == "1",
        seen_country=request_country(request),
    )
    return HttpResponseRedirect(url)


@require_GET
@never_cache
@shows_problems
def oauth_callback(request: HttpRequest, service: str) -> HttpResponse:
    presaved = authorization.complete(
        request.session,
        service_key=service,
        params=request.GET,
        ip_address=request.META.get("REMOTE_ADDR"),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return redirect("fans:thanks", presaved.subscription.campaign.slug)


@require_GET
@never_cache
@shows_problems
def thanks(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = authorization.visible_campaign(slug)
    context = pages.thanks_context(request.session, campaign)
    if context is None:
        return redirect(campaign)
    return render(request, "fans/thanks.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@shows_problems
def revoke(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (link scanners prefetch GETs, so it changes nothing); POST revokes."""
    if request.method == "POST":
        done = revocation.revoke(token)
        context = pages.revoke_context(done.consent, already_revoked=done.already_revoked, delivered=done.delivered)
        return render(request, "fans/revoked.html", context)
    consent = revocation.find_consent(token)
    if consent.revoked_at is not None:
        context = pages.revoke_context(consent, already_revoked=True, delivered=revocation.is_delivered(consent))
        return render(request, "fans/revoked.html", context)
    context = pages.revoke_context(consent, token=token, delivered=revocation.is_delivered(consent))
    return render(request, "fans/revoke_confirm.html", context)
