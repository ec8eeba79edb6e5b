"""The two staff roles: Label staff run campaigns; Managers also export subscribers and read the audit log."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

LABEL_STAFF = {
    "releases": [
        "add_artist", "change_artist", "view_artist",
        "add_release", "change_release", "view_release",
        "add_releaselink", "change_releaselink", "delete_releaselink", "view_releaselink",
        "add_campaign", "change_campaign", "view_campaign", "deliver_campaign",
    ],
    "fans": ["view_fan", "view_subscription", "view_consentrecord"],
    "delivery": ["view_deliveryattempt"],
}
MANAGER_EXTRA = {"releases": ["export_subscribers", "view_auditentry"]}


def permissions(apps, grants: dict):
    Permission = apps.get_model("auth", "Permission")
    found = []
    for app_label, codenames in grants.items():
        found += Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
    return found


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate): create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    label_staff, _ = Group.objects.get_or_create(name="Label staff")
    label_staff.permissions.add(*permissions(apps, LABEL_STAFF))
    manager, _ = Group.objects.get_or_create(name="Manager")
    manager.permissions.add(*permissions(apps, LABEL_STAFF), *permissions(apps, MANAGER_EXTRA))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Label staff", "Manager"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0005_audit_log_and_export_permission"),
        ("fans", "0004_email_signups"),
        ("delivery", "0003_rate_limiter"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
