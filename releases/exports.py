"""CSV export of subscribers for managers: streamed as it is read, never held in memory.

One query builds every cell as text in the database, formula-neutralized there too. PostgreSQL streams it
with `COPY (…) TO STDOUT WITH CSV` (psycopg 3's `cursor.copy`): the database writes the CSV, we pass its
bytes on in 64 KB chunks. Other databases (the SQLite demo) read the same query through a server-side
iterator and Python's csv module.

Emails appear only where the fan opted in to share theirs and has not withdrawn that consent (ConsentRecord
email_opt_in, not withdrawn by the fan: ConsentRecordQuerySet.SHARING_EMAIL), plus the email-only
sign-ups (fans.EmailSignup), marked as such. The fan's name, country and market (what the consent words,
fans.consent.WHAT_WE_KEEP, say we keep) appear only while the pre-save stands: a cancelled one (revoked) or one
whose every consent was withdrawn is a row without them.

Staff's exports go through `audited_export`, which writes each to the audit log first.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Case, CharField, Exists, F, Func, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Concat, Replace
from django.http import QueryDict, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify

from fans.models import ConsentRecord, EmailSignup, Subscription
from releases import audit
from releases.models import Artist, AuditEntry, Campaign

CHUNK_SIZE = 2000  # rows per round trip of the iterator (other databases)
CHUNK_BYTES = 64 * 1024  # bytes per chunk sent
BOM = "\ufeff".encode()
# How every row ends, the header's too: COPY's CSV ends rows in "\n" alone, and Python's csv module (the header,
# the other databases' rows) ends them as told. Its "\r\n" default made a file of both kinds.
LINE_END = "\n"
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
# OWASP "CSV injection": a spreadsheet runs a cell starting with = + - @ tab or carriage return as a formula.
FORMULA_START = r"^[-=+@\t\r]"
FORMULA_CHARACTERS = "-=+@\t\r"
# Excel set to a semicolon list separator (German, French, Dutch… regional settings) splits a comma-separated
# file at every ";", quoted or not, so "Mia;=1+1" would give a cell "=1+1": each ";" before a formula character
# gets the same quote as a cell's start.
SEMICOLON = ";"


class UTCText(Func):
    """A timestamp as `YYYY-MM-DD HH:MM:SS` in UTC, formatted by the database."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # SQLite stores UTC text; the format is a parameter (a literal % would upset DEBUG's query logging).
        formatted = Func(Value("%Y-%m-%d %H:%M:%S"), *self.get_source_expressions(), function="strftime")
        return formatted.as_sql(compiler, connection, **extra)


def safe(name: str) -> Case:
    """Column `name` as formula-neutralized text: a quote before a formula character at the cell's start and
    after each semicolon (SEMICOLON)."""
    text = Cast(F(name), CharField())
    for character in FORMULA_CHARACTERS:
        text = Replace(text, Value(SEMICOLON + character), Value(f"{SEMICOLON}'{character}"), output_field=CharField())
    return Case(
        When(**{f"{name}__regex": FORMULA_START}, then=Concat(Value("'"), text, output_field=CharField())),
        default=text,
        output_field=CharField(),
    )


# What an export's address may carry: the Excel switch. Anything else is a filter the export does not have.
OPTIONS = {"excel": {"0", "1"}}


def unknown_options(query: QueryDict) -> list[str]:
    """The parameters of `query` the export does not take (a filter typed by hand, or kept from a change list):
    the export would leave them out and hold every subscriber, not the ones they asked for."""
    return [key for key, values in query.lists() if not set(values) <= OPTIONS.get(key, set())]


def csv_rows(queryset: QuerySet, **cells) -> QuerySet:
    """The queryset as rows of HEADER's columns, each cell text from `cells` (by column name) or blank."""
    columns = {f"x_{name}": cells.get(name, Value("")) for name in HEADER}
    return queryset.annotate(**columns).order_by("campaign_id", "pk").values_list(*columns)


def withdrawn() -> Q:
    """The pre-saves the fan took back: cancelled (revoked), or every consent given for it withdrawn (a delivered
    one stays delivered). One with no consent row at all (from before consents were recorded) stands."""
    consents = ConsentRecord.objects.filter(subscription=OuterRef("pk"))
    return Q(status=Subscription.Status.REVOKED) | (
        Exists(consents) & ~Exists(consents.filter(revoked_at__isnull=True))
    )


def while_standing(name: str) -> Case:
    """Column `name`, formula-neutralized, or blank where the pre-save was withdrawn (the `withdrawn` annotation)."""
    return Case(When(withdrawn=True, then=Value("")), default=safe(name), output_field=CharField())


def subscription_rows(campaigns: Q) -> QuerySet:
    opted_in = Exists(ConsentRecord.objects.sharing_email().filter(subscription=OuterRef("pk")))
    subscriptions = (
        Subscription.objects.filter(campaigns)
        .annotate(opted_in=opted_in, withdrawn=withdrawn())
        .annotate(shared_email=Case(When(opted_in=True, then=F("fan__email")), default=Value("")))
    )
    return csv_rows(
        subscriptions,
        campaign=safe("campaign__slug"),
        source=Value("pre-save"),
        fan=while_standing("fan__display_name"),
        service=safe("fan__service"),
        status=F("status"),
        market=while_standing("market"),
        country=while_standing("fan__country"),
        subscribed_at=UTCText("created_at"),
        delivered_at=UTCText("delivered_at"),
        attempts=Cast("attempts", CharField()),
        last_error=safe("last_error"),
        email_opt_in=Case(When(opted_in=True, then=Value("yes")), default=Value("no")),
        email=safe("shared_email"),
    )


def signup_rows(campaigns: Q) -> QuerySet:
    return csv_rows(
        EmailSignup.objects.receiving().filter(campaigns),
        campaign=safe("campaign__slug"),
        source=Value("email-only sign-up"),
        country=safe("country"),
        subscribed_at=UTCText("created_at"),
        email_opt_in=Value("yes"),
        email=safe("email"),
    )


def copy_csv(queryset: QuerySet) -> Iterator[bytes]:
    """PostgreSQL writes the CSV: COPY (the queryset's SQL) TO STDOUT, read as it arrives."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
        yield from copy


def iterate_csv(queryset: QuerySet) -> Iterator[bytes]:
    buffer = Buffer()
    writer = csv.writer(buffer, lineterminator=LINE_END)
    for row in queryset.iterator(chunk_size=CHUNK_SIZE):
        writer.writerow(row)
        yield buffer.take()


class Buffer:
    """A file-like sink for csv.writer that hands back what was written since the last take()."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> bytes:
        text, self.parts = "".join(self.parts), []
        return text.encode()


def csv_chunks(querysets: list[QuerySet], *, excel: bool = False) -> Iterator[bytes]:
    """The header and every queryset's rows as CSV, in chunks of about CHUNK_BYTES."""
    rows = copy_csv if connection.vendor == "postgresql" else iterate_csv
    header = Buffer()
    csv.writer(header, lineterminator=LINE_END).writerow(HEADER)
    pending, size = [BOM if excel else b"", header.take()], 0
    for queryset in querysets:
        for data in rows(queryset):
            pending.append(bytes(data))
            size += len(data)
            if size >= CHUNK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
    yield b"".join(pending)


def export_querysets(campaigns: Q) -> list[QuerySet]:
    """The rows of the subscriptions and email-only sign-ups of the campaigns `campaigns` (a filter on
    `campaign`) selects."""
    return [subscription_rows(campaigns), signup_rows(campaigns)]


def row_count(campaigns: Q) -> int:
    subscriptions = Subscription.objects.filter(campaigns).count()
    return subscriptions + EmailSignup.objects.receiving().filter(campaigns).count()


def audited_export(
    user: AbstractBaseUser,
    name: str,
    *,
    campaign: Campaign | None = None,
    artist: Artist | None = None,
    excel: bool = False,
) -> StreamingHttpResponse:
    """The CSV of one campaign's or one artist's subscribers, written to the audit log (who, how many rows)."""
    campaigns = Q(campaign=campaign) if campaign is not None else Q(campaign__release__artist=artist)
    details = {"format": "excel" if excel else "utf-8"}
    if artist is not None:
        details["artist"] = artist.name
    audit.record(user, AuditEntry.Action.EXPORT, campaign=campaign, rows=row_count(campaigns), **details)
    return csv_response(name, export_querysets(campaigns), excel=excel)


def csv_response(name: str, querysets: list[QuerySet], *, excel: bool = False) -> StreamingHttpResponse:
    filename = f"{slugify(name)}-subscribers-{timezone.now():%Y-%m-%d}.csv"
    response = StreamingHttpResponse(csv_chunks(querysets, excel=excel), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
