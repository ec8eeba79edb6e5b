"""CSV export of subscribers for managers: streamed row by row from a server-side cursor, never held in memory.

Emails appear only where the fan opted in to share theirs (ConsentRecord.email_opt_in), plus the email-only
sign-ups (fans.EmailSignup), marked as such. Cells that a spreadsheet would run as a formula are neutralized.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator

from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify

from fans.models import ConsentRecord, EmailSignup, Subscription

CHUNK_SIZE = 2000  # rows fetched per round trip of the server-side cursor, and rows per chunk sent
HEADER = [
    "campaign",
    "source",
    "fan",
    "service",
    "status",
    "market",
    "country",
    "subscribed_at",
    "delivered_at",
    "attempts",
    "last_error",
    "email_opt_in",
    "email",
]
# OWASP "CSV injection": a spreadsheet treats a cell starting with these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value) -> str:
    """The cell's text, with a leading apostrophe if a spreadsheet would otherwise evaluate it."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def subscription_rows(campaign_filter: Q) -> Iterator[tuple]:
    opted_in = Exists(ConsentRecord.objects.filter(subscription=OuterRef("pk"), email_opt_in=True))
    rows = (
        Subscription.objects.filter(campaign_filter)
        .annotate(opted_in=opted_in)
        .annotate(shared_email=Case(When(opted_in=True, then=F("fan__email")), default=Value("")))
        .order_by("campaign_id", "pk")
        .values_list(
            "campaign__slug",
            "fan__display_name",
            "fan__service",
            "status",
            "market",
            "fan__country",
            "created_at",
            "delivered_at",
            "attempts",
            "last_error",
            "opted_in",
            "shared_email",
        )
    )
    for slug, name, service, status, market, country, created, delivered, attempts, error, opt, email in rows.iterator(
        chunk_size=CHUNK_SIZE
    ):
        yield (slug, "pre-save", name, service, status, market, country, created, delivered, attempts, error,
               "yes" if opt else "no", email)  # fmt: skip


def signup_rows(campaign_filter: Q) -> Iterator[tuple]:
    rows = (
        EmailSignup.objects.filter(campaign_filter, unsubscribed_at__isnull=True)
        .order_by("campaign_id", "pk")
        .values_list("campaign__slug", "country", "created_at", "email")
    )
    for slug, country, created, email in rows.iterator(chunk_size=CHUNK_SIZE):
        yield (slug, "email-only sign-up", "", "", "", "", country, created, None, "", "", "yes", email)


def csv_chunks(rows: Iterable[tuple], *, excel: bool = False) -> Iterator[str]:
    """CSV text in chunks of CHUNK_SIZE rows; Excel gets a byte-order mark so it reads UTF-8."""
    buffer = Buffer()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    if excel:
        buffer.parts.insert(0, "\ufeff")
    for count, row in enumerate(rows, start=1):
        writer.writerow([neutralize(cell) for cell in row])
        if count % CHUNK_SIZE == 0:
            yield buffer.take()
    yield buffer.take()


class Buffer:
    """A file-like sink for csv.writer that hands back what was written since the last take()."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


def export_rows(campaign_filter: Q, signup_filter: Q) -> Iterator[tuple]:
    yield from subscription_rows(campaign_filter)
    yield from signup_rows(signup_filter)


def row_count(campaign_filter: Q, signup_filter: Q) -> int:
    subscriptions = Subscription.objects.filter(campaign_filter).count()
    return subscriptions + EmailSignup.objects.filter(signup_filter, unsubscribed_at__isnull=True).count()


def csv_response(name: str, rows: Iterable[tuple], *, excel: bool = False) -> StreamingHttpResponse:
    filename = f"{slugify(name)}-subscribers-{timezone.now():%Y-%m-%d}.csv"
    response = StreamingHttpResponse(
        (chunk.encode() for chunk in csv_chunks(rows, excel=excel)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
