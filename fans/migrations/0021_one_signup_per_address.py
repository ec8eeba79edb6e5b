"""One email-only sign-up per address and campaign whatever its case (fans.signups.sign_up lower-cases the address
it stores and now finds one stored in another case). Sign-ups of one address in different cases, written some other
way, become one before the constraint is made: the one still receiving the email (confirmed, not unsubscribed;
the first confirmed: its record of what was agreed), else the latest; the release emails of the others go to it.
The release-day email already went to such an address once, if any of them received it. The constraint
comes in 0022 (PostgreSQL alters no table with the deletes' foreign key checks pending in the same transaction)."""

from django.db import migrations
from django.db.models import Count
from django.db.models.functions import Lower


def one_signup_per_address(apps, schema_editor):
    EmailSignup = apps.get_model("fans", "EmailSignup")
    ReleaseEmail = apps.get_model("fans", "ReleaseEmail")
    signups = EmailSignup.objects.annotate(address=Lower("email"))
    twins = signups.values("campaign_id", "address").annotate(n=Count("pk")).filter(n__gt=1).order_by()
    for twin in twins:
        rows = list(signups.filter(campaign_id=twin["campaign_id"], address=twin["address"]))
        receiving = [row for row in rows if row.confirmed_at is not None and row.unsubscribed_at is None]
        if receiving:
            kept = min(receiving, key=lambda row: (row.confirmed_at, row.pk))
        else:
            kept = max(rows, key=lambda row: (row.created_at, row.pk))
        others = [row.pk for row in rows if row.pk != kept.pk]
        ReleaseEmail.objects.filter(signup_id__in=others).update(signup_id=kept.pk)
        EmailSignup.objects.filter(pk__in=others).delete()


class Migration(migrations.Migration):
    dependencies = [("fans", "0020_opted_in_means_an_address")]

    operations = [migrations.RunPython(one_signup_per_address, migrations.RunPython.noop)]
