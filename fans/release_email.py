"""The release-day email: "it's out — listen now", to every fan who asked for it, with tracked links.

Who gets it: fans who pre-saved and ticked the email box (ConsentRecord.email_opt_in, not withdrawn by the fan,
with the fan's email: ConsentRecord.objects.sharing_email(); also when release day found their authorization gone)
and the email-only sign-ups whose address was confirmed (EmailSignup.objects.receiving()), once per address.

When: a django-q2 `Schedule.ONCE` named `release-email-<campaign id>` at the campaign's first firing time, kept
in step with the campaign by releases/signals.py, beside the delivery schedule (both made by `delivery.scheduling
.schedule_once`). Each address waits for the release to be out where it is: its market (the fan's, as the
delivery engine uses it, or the country seen at sign-up; else the campaign's default) names its local release
time on a per-market campaign, so a fan in New York is not told "it's out" at Auckland's midnight. A run sends
what is due and leaves one follow-up schedule (`release-email-<id>-next`) for the next market's time, or to
retry after the mail server failed, whichever comes first; the minute sweeper starts a run that was missed, or
that an address asking for the email later needs, until a week after the release date (LOOK_BACK): after that and
the last follow-up, no run comes (`runs_to_come`), and the pages promise no email. The task is idempotent: one
ReleaseEmail row per address, claimed with `select_for_update(skip_locked=True)` and marked sent in the same
transaction.

Links: the privacy self-service link carries the recipient's address sealed (fans.privacy.link_for_email); every
other link carries the row's id signed with django.core.signing (salted per purpose); a click
redirects only to one of the campaign's own listening links (fans.smartlink), never to a URL from the request.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from typing import NamedTuple

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from delivery.scheduling import schedule_once, start_missed
from fans import addresses, privacy, revocation, smartlink
from fans.addresses import lowered
from fans.models import ConsentRecord, EmailSignup, ReleaseEmail
from releases import markets
from releases.models import Campaign

logger = logging.getLogger(__name__)

SEND_TASK = "fans.release_email.send_release_emails"
# SMTP's "mailbox name not allowed": what an address that is not one is refused as, without asking the server.
INVALID_ADDRESS_CODE = 553
SCHEDULE_NAME_PREFIX = "release-email-"
BATCH_SIZE = 100  # messages per SMTP connection and per transaction
RETRY_AFTER = dt.timedelta(minutes=5)  # after the mail server failed; also the one-off emails' (`retry_later`)
MAIL_SERVER_ERRORS = (smtplib.SMTPException, OSError)  # the mail server is down or refused us: try again later
# The minute sweeper starts a missed run within a week of the release date (`missed_runs`); later, "it's out" is
# old news, and no run comes.
LOOK_BACK = dt.timedelta(days=7)
CLICK_REPEAT_SECONDS = 10 * 60  # a click on the same email's same link within this is not counted again
SALTS = {"open": "fans.release_email.open", "click": "fans.release_email.click", "unsubscribe": "fans.release_email.u"}


# --- Scheduling ---------------------------------------------------------------------------------------------
def schedule_name(campaign_id: int) -> str:
    return f"{SCHEDULE_NAME_PREFIX}{campaign_id}"


def next_run_schedule_name(campaign_id: int) -> str:
    """The follow-up run's schedule: the next market's release time, or a retry after the mail server failed."""
    return f"{schedule_name(campaign_id)}-next"


def sync_schedule(campaign: Campaign) -> Schedule | None:
    """Fire at the first firing time (the release time, or on a per-market campaign the first market's) for a
    live campaign; drafts have none; a schedule that fired stays as it is."""
    name = schedule_name(campaign.pk)
    release_at = campaign.first_firing_time()
    if campaign.status == Campaign.Status.DRAFT:
        Schedule.objects.filter(name=name, repeats__gt=0).delete()
        return None
    if release_at <= timezone.now():
        # Out already: never re-arm a sent email, but one still waiting for a later release time fires now.
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is not None and schedule.repeats == 0:
            return schedule
        if schedule is None and campaign.closed_everywhere():  # out before it had any: nobody was promised one
            return None
        # A per-market campaign made live after its first market's time fires now: the markets out already are
        # mailed at once ("it's out", late but as promised), and the run leaves its follow-up for the others.
    return schedule_once(name, SEND_TASK, campaign.pk, release_at)


def missed_runs(now: dt.datetime) -> list[Campaign]:
    """Campaigns whose release-day email is due but was neither sent nor planned, with no run to come: their
    schedule fired, or a per-market one never had any (made live after its first market's time before
    `sync_schedule` made one for it; an instant one out before it had any is left alone, as `sync_schedule`
    leaves it, for nobody could ask for its email), no follow-up is armed,
    and an address that still asks for the email has no ReleaseEmail row yet, or has an unsent one whose market's
    time has come. The fired run's task was lost (django-q2's Redis broker hands a task out once; a cluster
    killed before it ran loses it) or its worker died mid-run. Looks back a week (LOOK_BACK): later, "it's out" is
    old news.
    """
    week_ago = now.date() - LOOK_BACK
    names = Schedule.objects.filter(name__startswith=SCHEDULE_NAME_PREFIX)
    fired = set(names.filter(repeats=0).values_list("name", flat=True))
    armed = set(names.exclude(repeats=0).values_list("name", flat=True))
    per_market = Campaign.Firing.PER_MARKET
    candidates = (
        Campaign.objects.exclude(status=Campaign.Status.DRAFT)
        .filter(release__release_date__range=(week_ago, now.date() + dt.timedelta(days=1)))
        .select_related("release")
    )
    return [
        campaign
        for campaign in candidates
        if (schedule_name(campaign.pk) in fired or campaign.firing == per_market)
        and not armed & {schedule_name(campaign.pk), next_run_schedule_name(campaign.pk)}
        and campaign.first_firing_time() <= now
        and (has_unplanned(campaign) or has_due_unsent(campaign, now))
    ]


def runs_to_come(campaign: Campaign, now: dt.datetime | None = None) -> bool:
    """Whether a run of the campaign's release-day email may still come, to send an address that asks for it now:
    until LOOK_BACK after the release date its schedule fires, or its follow-up, or the minute sweeper starts one
    for an address with no email planned (`missed_runs`); after it, only a follow-up still armed (a retry after
    the mail server failed). Once none will, an address that starts sharing then (the fan's service reports
    another one) gets no email."""
    now = now or timezone.now()
    if campaign.status == Campaign.Status.DRAFT:
        return False
    if campaign.release.release_date >= now.date() - LOOK_BACK:
        return True
    names = [schedule_name(campaign.pk), next_run_schedule_name(campaign.pk)]
    return Schedule.objects.filter(name__in=names).exclude(repeats=0).exists()


def has_unplanned(campaign: Campaign) -> bool:
    """An address asking for the email (as `plan_recipients` finds them) has no ReleaseEmail row."""
    return any(source.exists() for source in unplanned(campaign))


def unplanned(campaign: Campaign) -> tuple[QuerySet, QuerySet]:
    """The consents sharing an address with a pre-save, and the sign-ups still receiving, whose address (annotated
    `address`, whatever its case) has no ReleaseEmail row for `campaign` yet: an anti-join in the database."""
    planned = ReleaseEmail.objects.annotate(lowered=Lower("email")).filter(
        campaign=campaign, lowered=Lower(OuterRef("address"))
    )
    consents = (
        ConsentRecord.objects.sharing_email()
        .filter(campaign=campaign, subscription__isnull=False)
        .exclude(subscription__fan__email="")
        .annotate(address=F("subscription__fan__email"))
        .filter(~Exists(planned))
    )
    signups = EmailSignup.objects.receiving().filter(campaign=campaign).annotate(address=F("email"))
    return consents, signups.filter(~Exists(planned))


def has_due_unsent(campaign: Campaign, now: dt.datetime) -> bool:
    """A planned email still wanted, unsent and not refused, whose market's release time has come."""
    unsent = ReleaseEmail.objects.unsent().filter(still_wanted(), campaign=campaign)
    markets_left = unsent.values_list("market", flat=True).distinct().order_by()
    return any(campaign.firing_time(market) <= now for market in markets_left)


def start_missed_runs(now: dt.datetime | None = None) -> int:
    """The minute sweeper's part: start the run of each release-day email missed for START_GRACE (see
    `missed_runs`), at most one per sweep and lease's time; returns how many were queued. Never an email twice:
    the run sends only rows not marked sent, claimed with SKIP LOCKED, each marked in its batch's transaction."""
    now = now or timezone.now()
    return start_missed(missed_runs(now), SEND_TASK, "release-email:missed", now)


# --- Recipients -----------------------------------------------------------------------------------------------
def plan_recipients(campaign: Campaign) -> int:
    """One ReleaseEmail row per address that asked for the email and has none yet (whatever its case), with the
    market it waits for, written 1,000 at a time (a row another run wrote meanwhile is skipped by the database's
    unique constraint). The database leaves out the addresses already planned (an anti-join), so a follow-up run
    reads only those that arrived since, not the whole list again (a per-market campaign runs once per market
    while sign-ups are open). Returns how many rows it wrote (`insert_planned`)."""
    consents, signups = unplanned(campaign)
    # A pre-save waits for its fan's market, as release day delivers it (`markets.of_fan`); a sign-up, which has no
    # fan, for the country seen at sign-up.
    consents = consents.values_list("pk", "address", "subscription__market", "subscription__fan__country")
    signups = signups.values_list("pk", "address", "country", Value(""))
    seen: set[str] = set()
    rows: list[Planned] = []
    written = 0
    for source, field in ((consents, "consent_id"), (signups, "signup_id")):
        for pk, email, market, fan_country in source.iterator(chunk_size=2000):
            if email.lower() in seen:  # a fan with a pre-save and a sign-up, say: one email
                continue
            seen.add(email.lower())
            rows.append(Planned(email, markets.of_fan(market, fan_country), **{field: pk}))
            if len(rows) == 1000:
                written += insert_planned(campaign, rows)
                rows = []
    return written + insert_planned(campaign, rows)


class Planned(NamedTuple):
    """A ReleaseEmail row to write: the address, its market, and the consent or the sign-up that asked."""

    email: str
    market: str
    consent_id: int | None = None
    signup_id: int | None = None


def insert_planned(campaign: Campaign, rows: list[Planned]) -> int:
    """Write `rows` as the campaign's ReleaseEmail rows in one INSERT, skipping each the database refuses as an
    address planned already (ON CONFLICT DO NOTHING: one_release_email_whatever_the_case; a row another run is
    writing meanwhile is waited for, then skipped), and return how many it wrote: the rows the database returns
    (RETURNING), so that two runs planning at once never both count an address. bulk_create(ignore_conflicts=True)
    returns every row it was given, written or skipped."""
    if not rows:
        return 0
    table = connection.ops.quote_name(ReleaseEmail._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s, '', 0, %s)"] * len(rows))
    sql = (
        f"INSERT INTO {table} (campaign_id, email, market, consent_id, signup_id, refusal, clicks, created_at) "  # noqa: S608
        f"VALUES {values} ON CONFLICT DO NOTHING RETURNING id"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [value for row in rows for value in (campaign.pk, *row, now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


# --- Links ------------------------------------------------------------------------------------------------------
def sign(purpose: str, value: str) -> str:
    return signing.Signer(salt=SALTS[purpose]).sign(value)


def unsign(purpose: str, token: str) -> str | None:
    try:
        return signing.Signer(salt=SALTS[purpose]).unsign(token)
    except signing.BadSignature:
        return None


def absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL + path


def open_url(email: ReleaseEmail) -> str:
    return absolute(reverse("fans:email_open", args=[sign("open", str(email.pk))]))


def click_url(email: ReleaseEmail, platform: str) -> str:
    return absolute(reverse("fans:email_click", args=[sign("click", f"{email.pk}.{platform}")]))


def unsubscribe_url(email: ReleaseEmail) -> str:
    return absolute(reverse("fans:email_unsubscribe", args=[sign("unsubscribe", str(email.pk))]))


# --- Sending ----------------------------------------------------------------------------------------------------
def message(email: ReleaseEmail, campaign: Campaign, destinations: list[smartlink.Destination]):
    """The email to `email`'s address: its places to listen in the smart link's order for its market, as the
    campaign page would list them to a visitor from there."""
    release = campaign.release
    context = {
        "release": release,
        "artist": release.artist,
        "campaign": campaign,
        "links": [(d.label, click_url(email, d.key)) for d in smartlink.ordered(destinations, country=email.market)],
        "page_url": absolute(campaign.get_absolute_url()),
        "unsubscribe_url": unsubscribe_url(email),
        "privacy_url": absolute(privacy.link_for_email(email.email)),  # see, download or erase what we hold
        "open_url": open_url(email),
    }
    subject = f"It's out: {release.title} by {release.artist} — listen now"
    mail = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("email/release_day.txt", context),
        to=[email.email],
        headers={
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058: the mailbox's own button
        },
    )
    mail.attach_alternative(render_to_string("email/release_day.html", context), "text/html")
    return mail


def send_release_emails(campaign_id: int) -> str:
    """The task: plan the recipients, then send in batches until none is left unsent. Safe to run twice."""
    campaign = Campaign.objects.select_related("release__artist").filter(pk=campaign_id).first()
    if campaign is None or campaign.status == Campaign.Status.DRAFT:
        return "nothing to send"
    if campaign.first_firing_time() > timezone.now():  # queued before the release was moved later: its schedule
        return f"release email for campaign {campaign_id}: not out yet"  # moved too
    planned = plan_recipients(campaign)
    due, next_market_at = due_markets(campaign)
    destinations = smartlink.destinations(campaign.release, campaign.release.links.all())
    sent, refused = 0, {}
    try:
        while True:
            batch_sent, taken = send_batch(campaign, destinations, refused, due)
            if not taken:
                break
            sent += batch_sent
    except MAIL_SERVER_ERRORS as exc:
        retry_at = follow_up(campaign.pk, timezone.now() + RETRY_AFTER, next_market_at)
        logger.warning("Release email for campaign %s: planned %s, stopped after %s sent (%s); retrying at %s",
                       campaign_id, planned, sent, type(exc).__name__, retry_at)  # fmt: skip
        return (
            f"release email for campaign {campaign_id}: planned {planned}, sent {sent}, mail server failed, "
            f"retry at {retry_at}"
        )
    retry = any(code < 500 for code in refused.values())  # 4xx: the server may take them later; 5xx: never
    next_run = follow_up(campaign.pk, timezone.now() + RETRY_AFTER if retry else None, next_market_at)
    summary = f"release email for campaign {campaign_id}: planned {planned}, sent {sent}"
    if refused:
        later = f"retry at {next_run}" if retry else "not retried"
        logger.warning("Release email for campaign %s: the mail server refused %s address(es); %s",
                       campaign_id, len(refused), later)  # fmt: skip
        summary += f", refused {len(refused)}, {later}"
    if next_market_at is not None:
        summary += f", the next market's at {next_market_at}"
    return summary


def retry_later(name: str, task: str, object_id: int) -> dt.datetime:
    """After the mail server failed: a ONCE schedule named `name` (one at a time) that runs `task(object_id)`
    again after RETRY_AFTER; returns when. Serves the one-off emails (fans/signups.py's confirmation,
    releases/report.py's report); this module's own runs leave their follow-up with `follow_up`."""
    retry_at = timezone.now() + RETRY_AFTER
    schedule_once(name, task, object_id, retry_at)
    return retry_at


def due_markets(campaign: Campaign) -> tuple[list[str], dt.datetime | None]:
    """The markets of the unsent emails whose local release time has come, and when the next run is needed
    (None if never): the soonest time of the others, or on a per-market campaign still taking sign-ups where
    the release is not out, the next market's time (an address may arrive from there meanwhile). On a campaign
    that fires at one instant every market is due at once."""
    now = timezone.now()
    unsent = ReleaseEmail.objects.unsent().filter(campaign=campaign)
    due, later = [], []
    for market in unsent.values_list("market", flat=True).distinct().order_by():
        at = campaign.firing_time(market)
        if at <= now:
            due.append(market)
        else:
            later.append(at)
    if campaign.offer_email_optin and not campaign.closed_everywhere():
        release = campaign.release
        later.extend(filter(None, [markets.next_release_instant(release.release_date, release.release_time, now)]))
    return due, min(later, default=None)


def follow_up(campaign_id: int, *times: dt.datetime | None) -> dt.datetime | None:
    """Leave the campaign's one follow-up run at the soonest of `times` (None: not needed; no time, no run); that
    run sends what is due then and leaves the next follow-up."""
    at = min((t for t in times if t is not None), default=None)
    if at is not None:
        schedule_once(next_run_schedule_name(campaign_id), SEND_TASK, campaign_id, at)
    return at


def still_wanted() -> Q:
    """The planned emails whose address still asks for one: its consent is neither revoked nor withdrawn, or the
    address has a confirmed sign-up not unsubscribed, or another pre-save of the campaign shares it, whatever the
    case of either (one email an address: a fan may revoke or erase the one it was planned for between planning and
    a retry)."""
    signup = EmailSignup.objects.receiving().filter(
        campaign=OuterRef("campaign"),
        email__lower=Lower(OuterRef("email")),  # one stored in mixed case asks too
    )
    sharing = (
        ConsentRecord.objects.sharing_email()
        .filter(campaign=OuterRef("campaign"), subscription__isnull=False)
        .annotate(address=Lower("subscription__fan__email"))
        .filter(address=Lower(OuterRef("email")))
    )
    return (
        Q(consent__in=ConsentRecord.objects.sharing_email())
        | Q(signup__in=EmailSignup.objects.receiving())
        | Q(Exists(signup))
        | Q(Exists(sharing))
    )


def send_batch(
    campaign: Campaign, destinations: list[smartlink.Destination], refused: dict[int, int], markets_due: list[str]
) -> tuple[int, int]:
    """Send up to BATCH_SIZE unsent emails of the `markets_due` over one connection; returns how many were sent,
    and taken.

    They are marked sent when the batch commits, also when the mail server fails mid-batch (the error is raised
    after the commit, so the retry sends only the rest); one whose address the server refuses stays unsent and
    goes into `refused` (row id → SMTP code), skipped by the run's later batches, and when the refusal is
    permanent (5xx) its row keeps it (`refusal`) and is never tried again. A crash mid-batch sends that batch
    again: at least once, never skipped."""
    with transaction.atomic():
        batch = list(
            ReleaseEmail.objects.unsent()
            .select_for_update(skip_locked=True, of=("self",))
            .filter(campaign=campaign, market__in=markets_due)
            .filter(still_wanted())
            .exclude(pk__in=list(refused))
            .order_by("pk")[:BATCH_SIZE]
        )
        if not batch:
            return 0, 0
        sent, failure, refusals = [], None, {}
        try:
            with get_connection() as connection:
                for email in batch:
                    if not addresses.is_valid(email.email):  # stored before addresses were checked: never sendable
                        refused[email.pk] = INVALID_ADDRESS_CODE
                        refusals[email.pk] = f"{INVALID_ADDRESS_CODE} not a valid email address"
                        continue
                    try:
                        connection.send_messages([message(email, campaign, destinations)])
                    except smtplib.SMTPRecipientsRefused as exc:
                        code, reply = max(exc.recipients.values())
                        refused[email.pk] = code
                        if code >= 500:  # permanent: recorded, and never asked again
                            refusals[email.pk] = f"{code} {reply.decode(errors='replace')}"[:200]
                    else:
                        sent.append(email.pk)
        except MAIL_SERVER_ERRORS as exc:
            failure = exc
        ReleaseEmail.objects.filter(pk__in=sent).update(sent_at=timezone.now())
        for pk, refusal in refusals.items():
            ReleaseEmail.objects.filter(pk=pk).update(refusal=refusal)
    if failure is not None:
        raise failure
    return len(sent), len(batch)


# --- What fans do with it -----------------------------------------------------------------------------------
def record_open(token: str) -> None:
    pk = unsign("open", token)
    if pk and pk.isdigit():
        ReleaseEmail.objects.filter(pk=pk, opened_at__isnull=True).update(opened_at=timezone.now())


def click_destination(token: str) -> str | None:
    """The campaign's own link the signed token names (counting the click, once per CLICK_REPEAT_SECONDS for the
    same email and link: a mail scanner or a reload is not another fan's interest), or None."""
    value = unsign("click", token)
    if not value or "." not in value:
        return None
    pk, platform = value.split(".", 1)
    email = ReleaseEmail.objects.select_related("campaign__release").filter(pk=pk).first() if pk.isdigit() else None
    if email is None:
        return None
    release = email.campaign.release
    destination = smartlink.find(smartlink.destinations(release, release.links.all()), platform)
    if destination is None:
        return None
    now = timezone.now()
    if cache.add(f"fans.email_click:{email.pk}:{destination.key}", True, CLICK_REPEAT_SECONDS):
        ReleaseEmail.objects.filter(pk=email.pk).update(clicks=F("clicks") + 1)
    ReleaseEmail.objects.filter(pk=email.pk, clicked_at__isnull=True).update(clicked_at=now)
    ReleaseEmail.objects.filter(pk=email.pk, opened_at__isnull=True).update(opened_at=now)  # images were off
    return destination.url


def email_for_unsubscribe(token: str) -> ReleaseEmail | None:
    pk = unsign("unsubscribe", token)
    if not pk or not pk.isdigit():
        return None
    return ReleaseEmail.objects.select_related("campaign__release__artist").filter(pk=pk).first()


def unsubscribe(email: ReleaseEmail) -> None:
    """No more email for this campaign: the email-only sign-up ends, the fan's email consent is withdrawn."""
    now = timezone.now()
    with transaction.atomic():
        ReleaseEmail.objects.filter(pk=email.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=now)
        # The address's sign-up ends too when the email went out for the fan's pre-save (one email per address).
        address_signup = Q(campaign_id=email.campaign_id, email__lower=lowered(email.email))  # whatever the case
        EmailSignup.objects.filter(Q(pk=email.signup_id) | address_signup, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now
        )
        # Every consent of the campaign carrying the address is withdrawn (a fan who pre-saved on two services
        # got one email), and those given with the email's own consent (its pre-save's others).
        carrying = Q(email__lower=lowered(email.email))
        if email.consent_id:
            consent = ConsentRecord.objects.filter(pk=email.consent_id).first()
            carrying |= Q(pk=email.consent_id)
            if consent is not None and consent.subscription_id is not None:
                carrying |= Q(subscription_id=consent.subscription_id)
        revocation.stop_sharing_email(ConsentRecord.objects.filter(carrying, campaign_id=email.campaign_id))
