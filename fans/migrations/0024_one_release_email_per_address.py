"""One release-day email per address and campaign whatever its case (two runs planning at once could each write
the address in the case its source held: the fan's pre-save, as the service reports it, and the address's
sign-up, lower-cased, and both were sent). Emails of one address in different cases become one before the
constraint is made (0025): the first sent (its links are in the fan's mailbox), else the first planned. It keeps
what the others record of the address: the first unsubscribe (one email an address: unsubscribing stopped them
all), open and click, the clicks, the consent or sign-up it was planned for when it has none, and, unsent, the
mail server's refusal of the address."""

from django.db import migrations
from django.db.models import Count
from django.db.models.functions import Lower


def first(rows, field):
    return min((getattr(row, field) for row in rows if getattr(row, field) is not None), default=None)


def one_release_email_per_address(apps, schema_editor):
    ReleaseEmail = apps.get_model("fans", "ReleaseEmail")
    emails = ReleaseEmail.objects.annotate(address=Lower("email"))
    twins = emails.values("campaign_id", "address").annotate(n=Count("pk")).filter(n__gt=1).order_by()
    for twin in twins:
        rows = list(emails.filter(campaign_id=twin["campaign_id"], address=twin["address"]))
        sent = [row for row in rows if row.sent_at is not None]
        kept = min(sent, key=lambda row: (row.sent_at, row.pk)) if sent else min(rows, key=lambda row: row.pk)
        others = [row for row in rows if row.pk != kept.pk]
        kept.unsubscribed_at = first(rows, "unsubscribed_at")
        kept.opened_at = first(rows, "opened_at")
        kept.clicked_at = first(rows, "clicked_at")
        kept.clicks = sum(row.clicks for row in rows)
        kept.consent_id = kept.consent_id or next((row.consent_id for row in others if row.consent_id), None)
        kept.signup_id = kept.signup_id or next((row.signup_id for row in others if row.signup_id), None)
        if kept.sent_at is None and not kept.refusal:
            kept.refusal = next((row.refusal for row in others if row.refusal), "")
        kept.save()
        ReleaseEmail.objects.filter(pk__in=[row.pk for row in others]).delete()


class Migration(migrations.Migration):
    dependencies = [("fans", "0023_release_email_by_address")]

    operations = [migrations.RunPython(one_release_email_per_address, migrations.RunPython.noop)]
