"""The fans' pages. Thin: each view asks fans.authorization, fans.revocation, fans.privacy, fans.signups,
fans.pagecache, fans.preview or fans.pages, records the funnel step (fans.tracking), then renders.

Every problem of the flow is a FanFlowError, shown by templates/fans/problem.html with its own status.
Endpoints that write are rate limited per IP (fans/ratelimits.py); going over shows the 429 page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import REASON_CSRF_TOKEN_MISSING, REASON_NO_CSRF_COOKIE, get_token
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.log import log_response
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache

from fans import (
    authorization,
    consent,
    pagecache,
    pages,
    preview,
    privacy,
    privacy_email,
    retention,
    revocation,
    signups,
    smartlink,
    tracking,
)
from fans.errors import FanFlowError, MethodNotAllowed, NotFound, SecurityCheckFailed
from fans.forms import EmailSignupForm, PrivacyLinkForm
from fans.geo import client_ip, request_country
from fans.models import FunnelEvent
from fans.ratelimits import click_rate, limited

Kind = FunnelEvent.Kind


def shows_problems(view):
    """Render a FanFlowError raised by `view` as the problem page, with the error's status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except FanFlowError as problem:
            context = {"problem": problem}
            if problem.email_campaign is not None:  # the fan can still ask for an email when it's out
                release = problem.email_campaign.release
                context["email_form"] = EmailSignupForm(consent_label=consent.email_signup_words(release))
            return render(request, "fans/problem.html", context, status=problem.status)

    return wrapper


def allow(*methods: str, back: Callable[..., tuple[str, str]] | None = None):
    """Django's require_http_methods for the fans' pages: another method gets the problem page, still a 405 with
    its Allow header, instead of an empty page the browser shows as "HTTP ERROR 405". A form's address opened
    again (a reload, a restored tab: /<slug>/email/#email-signup after an email sign-up) is a GET of what the
    form POSTed to. The page leads back to the campaign page where the URL names a live one, or to what
    `back(**the URL's kwargs)` gives, (url, words)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method in methods:
                return view(request, *args, **kwargs)
            problem = method_not_allowed(request, list(methods), kwargs, back)
            response = render(request, "fans/problem.html", {"problem": problem}, status=problem.status)
            response["Allow"] = ", ".join(problem.allowed)
            log_response(
                "Method Not Allowed (%s): %s", request.method, request.path, response=response, request=request
            )
            return response

        return wrapper

    return decorator


def method_not_allowed(request: HttpRequest, allowed: list[str], kwargs: dict, back) -> MethodNotAllowed:
    if request.method in ("GET", "HEAD") and "POST" in allowed:
        message = (
            "This address is where a form sends its answer: opened on its own (a reload, or a tab your browser "
            "restored), it has nothing to show, and nothing was sent or saved again."
        )
    else:
        message = f"This address doesn't answer a {request.method[:20]} request. Nothing was sent or saved."
    url, words = back(**kwargs) if back else ("", "")
    if not url and isinstance(kwargs.get("slug"), str):
        try:
            url = pagecache.campaign_page(kwargs["slug"]).campaign.get_absolute_url()
        except NotFound:  # no such campaign, or a draft: no link to a 404
            url = ""
    return MethodNotAllowed(message, allowed=allowed, retry_url=url, retry_words=words)


def csrf_failed(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a form posted without its CSRF cookie or with an old token, as the 403
    problem page. Django logs `reason` (django.security.csrf, a warning); the page never shows it. The console
    keeps Django's own page, which tells staff more with DEBUG on.

    The campaign page's forms carry no token: its script fetches one when the fan presses a button
    (`form_token`). A pre-save or email form that comes without any token, the cookie's or the form's
    (JavaScript off, or the fetch failed), gets the campaign page again, with a token, what the fan sent kept,
    and a word to press the button again (`send_again`): nothing is done until they press it. Another site's
    form, posted by a browser, carries that site's Origin and fails Django's Origin check before this."""
    if request.path.startswith(reverse("admin:index")):
        return django_csrf_failure(request, reason=reason)
    match = request.resolver_match
    slug = match.kwargs.get("slug") if match and match.namespace == "fans" else None
    no_token_at_all = reason in (REASON_NO_CSRF_COOKIE, REASON_CSRF_TOKEN_MISSING) and not request.POST.get(
        "csrfmiddlewaretoken"
    )
    if no_token_at_all and slug and match.view_name in ("fans:presave", "fans:email_signup"):
        return send_again(request, slug, match.view_name == "fans:email_signup")
    problem = SecurityCheckFailed(
        "The security check of the page you came from didn't match what your browser sent back. That happens when "
        "cookies are blocked, when the page was open for a long time, or inside an app's built-in browser. Nothing "
        "was saved or shared. Go back, reload the page and try again; if it keeps happening, open the page in your "
        "usual browser, or allow cookies for this site.",
        retry_url=reverse("fans:campaign", args=[slug]) if slug else "",
    )
    return render(request, "fans/problem.html", {"problem": problem}, status=problem.status)


@never_cache
@limited()  # a render each time, uncached: limited like the forms themselves
@shows_problems
def send_again(request: HttpRequest, slug: str, email: bool) -> HttpResponse:
    """The campaign page for a pre-save or email form that came without its CSRF token (csrf_failed): rendered
    with one, what the fan sent kept (the ticked email opt-in, the typed address and consent, the UTM fields),
    and a line asking them to press the button again. Still a 403: nothing was done. Not counted as a view."""
    page = pagecache.campaign_page(slug)
    seen = tracking.visit(request, params=request.POST)
    form = EmailSignupForm(
        consent_label=consent.email_signup_words(page.release),
        initial={"email": request.POST.get("email", "")[:254], "consent": request.POST.get("consent") == "1"},
    )
    context = campaign_context(request, page, seen, email_form=form if email else None)
    context.update(
        send_again="email" if email else "presave", email_opt_in_ticked=request.POST.get("email_opt_in") == "1"
    )
    return render(request, "fans/campaign.html", context, status=403)


@allow("GET", "HEAD")
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for whatever a page names (the console's pages name none): the static
    icon. Not a permanent redirect: the static URL may change with a deploy."""
    response = HttpResponseRedirect(static("favicon.ico"))
    patch_cache_control(response, public=True, max_age=86_400)
    return response


def health(request: HttpRequest) -> HttpResponse:
    """A load balancer's health check, and the benchmark's baseline: no database, no template."""
    return HttpResponse("ok", content_type="text/plain")


# Campaign page, smart link and the email fallback ----------------------------------------------------------


def campaign_context(request: HttpRequest, page: pagecache.CampaignPage, seen: tracking.Visit, **extra) -> dict:
    return pages.campaign_context(
        page,
        country=seen.country,
        preferred=request.COOKIES.get(smartlink.PREFERENCE_COOKIE, "")[:20],
        in_app=seen.in_app,
        page_url=page.campaign.public_url(),
        utm=seen.utm,
        **extra,
    )


@allow("GET", "HEAD")
@shows_problems
def campaign(request: HttpRequest, slug: str) -> HttpResponse:
    """The campaign page: warm, it reads no database row, and at most one query writes the buffered page views
    (fans/pagecache.py, fans/tracking.py). It carries no CSRF token and sets no CSRF cookie: its forms fetch
    Django's token when pressed (`form_token`; without JavaScript, `send_again`). A draft is a 404, but for staff
    who may preview it (fans/preview.py)."""
    try:
        page = pagecache.campaign_page(slug)
    except NotFound:
        draft = preview.draft_page(slug) if preview.may_preview(request.user) else None
        if draft is None:
            raise
        return campaign_preview(request, draft)
    counted = request.method == "GET" and not tracking.is_bot(request)  # a HEAD or a link preview is no visit
    seen = tracking.visit(request, may_set_cookie=counted)
    rendered = pagecache.campaign_html(
        page,
        country=seen.country,
        preferred=request.COOKIES.get(smartlink.PREFERENCE_COOKIE, "")[:20],
        in_app=seen.in_app,
    )
    content = pagecache.page_content(rendered, utm=seen.utm)
    if counted:
        tracking.record_view(page.campaign, seen)
    response = HttpResponse(content)
    response["Vary"] = "Cookie"  # the smart link's order follows the fan's remembered service
    response["Cache-Control"] = "private"
    return tracking.remember_visitor(response, seen)


def campaign_preview(request: HttpRequest, page: pagecache.CampaignPage) -> HttpResponse:
    """A draft as fans will see it once live, for staff: rendered afresh, not cached, counted or indexed."""
    seen = tracking.visit(request)  # read only: no visitor cookie, nothing recorded
    context = pages.campaign_context(
        page,
        country=seen.country,
        in_app=seen.in_app,
        page_url=page.campaign.public_url(),
        seen=preview.seen_once_live(page.campaign, seen.country),
    )
    response = render(request, "fans/campaign.html", {**context, "preview": True})
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex"
    return response


@allow("GET")
@never_cache
def form_token(request: HttpRequest) -> JsonResponse:
    """The CSRF token the campaign page's forms fetch when a button is pressed (static/js/form-token.js):
    Django's own `get_token`, which sets the CSRF cookie too. Another site's page can't read the answer (no
    CORS), so the token stays the fan's browser's."""
    return JsonResponse({"token": get_token(request)})


@allow("POST")
@limited()
@shows_problems
def email_signup(request: HttpRequest, slug: str) -> HttpResponse:
    page = pagecache.campaign_page(slug)
    release = page.release
    form = EmailSignupForm(request.POST, consent_label=consent.email_signup_words(release))
    seen = tracking.visit(request, params=request.POST)
    if not form.is_valid():
        return render(request, "fans/campaign.html", campaign_context(request, page, seen, email_form=form), status=400)
    signups.sign_up(page.campaign, form.cleaned_data["email"], country=seen.country)
    tracking.record(Kind.EMAIL_OPTIN, page.campaign, seen)
    # The address as typed (lower-cased), not as stored: a sign-up stored in another case must not show it was there.
    email = signups.normalized(form.cleaned_data["email"])
    return render(request, "fans/email_thanks.html", {"campaign": page.campaign, "release": release, "email": email})


@allow("GET", "POST")
@limited()
@never_cache
@shows_problems
def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the confirmation email: GET asks (mail scanners prefetch links), the button POSTs."""
    signup = signups.signup_for(token)
    if request.method == "POST":
        signups.confirm(signup)
        signup.refresh_from_db()
    context = {"signup": signup, "release": signup.campaign.release, "too_late": signups.too_late(signup)}
    return render(request, "fans/email_confirm.html", context)


@allow("GET")
@limited(rate=click_rate, method=("GET",))
@shows_problems
def listen(request: HttpRequest, slug: str, platform: str) -> HttpResponse:
    """A smart-link click: count it, remember the platform, and redirect to that campaign's own link only."""
    page = pagecache.campaign_page(slug)
    seen = tracking.visit(request)
    destination = smartlink.find(smartlink.destinations(page.release, page.links), platform)
    if destination is None:
        raise NotFound("This release has no link for that platform.", retry_url=page.campaign.get_absolute_url())
    if not page.campaign.is_out_in(seen.country):  # per market: out where the fan is
        raise smartlink.not_out_yet(page.campaign, seen.country)
    tracking.record(Kind.LISTEN_CLICK, page.campaign, seen, service=destination.key)
    response = HttpResponseRedirect(destination.url)
    response.set_cookie(
        smartlink.PREFERENCE_COOKIE,
        destination.key,
        max_age=smartlink.PREFERENCE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


# Pre-save: authorization with a service ---------------------------------------------------------------------


@allow("POST")
@limited()
@shows_problems
def presave(request: HttpRequest, slug: str, service: str) -> HttpResponse:
    page = pagecache.campaign_page(slug)
    seen = tracking.visit(request, params=request.POST)
    url = authorization.start(
        request.session,
        campaign=page.campaign,
        service_key=service,
        email_opt_in=request.POST.get("email_opt_in") == "1",
        seen_country=request_country(request),
        in_app=seen.in_app,
        utm=seen.utm,
    )
    tracking.keep_utm_for_authorization(request.session, slug, seen)
    tracking.record(Kind.CLICK, page.campaign, seen, service=service)
    return HttpResponseRedirect(url)


@allow("GET")
@never_cache
@limited(rate=click_rate, method=("GET",))
@shows_problems
def oauth_callback(request: HttpRequest, service: str) -> HttpResponse:
    return finish_authorization(request, service, request.GET)


def finish_authorization(request: HttpRequest, service: str, params: Mapping[str, str]) -> HttpResponse:
    """The end of a sign-in with any service (an OAuth callback's query, or the Music-User-Token fans.musickit
    received): complete the pending authorization, record the funnel's "authorized", show the thank-you page."""
    try:
        presaved = authorization.complete(
            request.session,
            service_key=service,
            params=params,
            ip_address=client_ip(request),  # behind a proxy, the client's, not the proxy's
            user_agent=request.headers.get("User-Agent", ""),
        )
    except authorization.AlreadyCompleted as done:  # a reload of the callback: nothing to do again
        return redirect("fans:thanks", done.slug)
    subscription = presaved.subscription
    slug = subscription.campaign.slug
    tracking.record(
        Kind.AUTHORIZE,
        subscription.campaign,
        tracking.visit(request),
        service=service,
        subscription=subscription,
        utm=tracking.utm_for_authorization(request.session, slug),
    )
    return redirect("fans:thanks", slug)


@allow("GET")
@never_cache
@shows_problems
def thanks(request: HttpRequest, slug: str) -> HttpResponse:
    page = pagecache.campaign_page(slug)
    context = pages.thanks_context(request.session, page)
    if context is None:
        return redirect(page.campaign)
    return render(request, "fans/thanks.html", context)


@allow("GET", "HEAD", "POST")
@never_cache
@limited()
@shows_problems
def revoke(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (link scanners prefetch GETs, so it changes nothing); POST cancels. A pre-save release day has
    done has nothing left to cancel: both answer how to undo it instead, as the privacy page does; nor has one
    whose permission was withdrawn in the service: both say so, and why."""
    if request.method == "POST":
        done = revocation.revoke(token)
        context = pages.revoke_context(done.consent, cancelled=done.cancelled, failed=done.failed)
        return render(request, "fans/revoked.html", context)
    consent_record = revocation.find_consent(token)
    finished = revocation.is_delivered(consent_record) or revocation.withdrawn_in_service(consent_record)
    if consent_record.revoked_at is not None or finished:
        return render(request, "fans/revoked.html", pages.revoke_context(consent_record))
    return render(request, "fans/revoke_confirm.html", pages.revoke_context(consent_record, token=token))


def notice_context(link_form: PrivacyLinkForm) -> dict:
    """The privacy notice's: who answers for fans' data (settings.PRIVACY_CONTROLLER, PRIVACY_CONTACT_EMAIL), how
    long each thing is kept, and the form that emails a fresh privacy link."""
    return {
        "link_form": link_form,
        "keep": retention.periods(),
        "controller": settings.PRIVACY_CONTROLLER,
        "contact_email": settings.PRIVACY_CONTACT_EMAIL,
    }


@allow("GET")
def privacy_notice(request: HttpRequest) -> HttpResponse:
    return render(request, "fans/privacy_notice.html", notice_context(PrivacyLinkForm()))


@allow("POST", back=lambda: (reverse("fans:privacy_notice") + "#privacy-link", "Ask for a link by email"))
@limited()
@shows_problems
def privacy_link(request: HttpRequest) -> HttpResponse:
    """A fresh privacy link by email, for a fan whose link expired: the same answer whatever we hold."""
    form = PrivacyLinkForm(request.POST)
    if not form.is_valid():
        return render(request, "fans/privacy_notice.html", notice_context(form), status=400)
    privacy_email.request_link(form.cleaned_data["email"])
    return render(request, "fans/privacy_link_sent.html", {"email": form.cleaned_data["email"]})


# Privacy self-service -----------------------------------------------------------------------------------------


@allow("GET")
@never_cache
@shows_problems
def privacy_overview(request: HttpRequest, token: str) -> HttpResponse:
    subject = privacy.subject_from(token)
    return render(request, "fans/privacy.html", pages.privacy_context(subject, token))


@allow("GET")
@never_cache
@limited(rate=click_rate, method=("GET",))
@shows_problems
def privacy_export(request: HttpRequest, token: str) -> HttpResponse:
    data = privacy.export(privacy.subject_from(token))
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="my-presave-data.json"'
    return response


@allow("GET", "HEAD", "POST")
@never_cache
@limited()
@shows_problems
def privacy_revoke(request: HttpRequest, token: str, subscription_id: int) -> HttpResponse:
    """GET asks (a link scanner's GET changes nothing); POST cancels, and the privacy page says what happened."""
    subject = privacy.subject_from(token)
    if request.method == "POST":
        subscription, cancelled, failed = privacy.revoke_one(subject, subscription_id)
        messages.success(request, pages.cancelled_words(subscription, cancelled=cancelled, failed=failed))
        return redirect("fans:privacy", token)
    subscription = privacy.own_subscription(subject, subscription_id)
    return render(request, "fans/privacy_cancel.html", pages.privacy_cancel_context(subscription, token))


@allow("POST", back=lambda token, **_: (reverse("fans:privacy", args=[token]), "Back to what we hold about you"))
@never_cache
@limited()
@shows_problems
def privacy_stop_email(request: HttpRequest, token: str, subscription_id: int) -> HttpResponse:
    """The release-day email of one pre-save, stopped; the privacy page says so."""
    subscription, elsewhere = privacy.stop_email(privacy.subject_from(token), subscription_id)
    messages.success(request, pages.stopped_email_words(subscription, elsewhere))
    return redirect("fans:privacy", token)


@allow("GET", "HEAD", "POST")
@never_cache
@limited()
@shows_problems
def privacy_erase(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks; POST erases (a link scanner's GET changes nothing)."""
    subject = privacy.subject_from(token)
    if request.method == "POST":
        erased = privacy.erase(subject)
        return render(request, "fans/erased.html", {"erased": erased})
    return render(request, "fans/erase_confirm.html", pages.privacy_context(subject, token))
