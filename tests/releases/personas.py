"""The console's personas: label staff and managers, as the roles migration defines them."""

from importlib import import_module

from django.apps import apps
from django.contrib.auth.models import Group, User

roles = import_module("releases.migrations.0006_staff_groups")
PASSWORD = "staff-password-3"


def role(name: str) -> Group:
    """The roles migration's group. A transactional test's flush empties auth_group: it is then made again with
    the migration's own grants."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        grants = [roles.LABEL_STAFF] + ([roles.MANAGER_EXTRA] if name == "Manager" else [])
        group.permissions.add(*(permission for grant in grants for permission in roles.permissions(apps, grant)))
    return group


def member_of(group: str, username: str) -> User:
    user = User.objects.create_user(username, f"{username}@label.test", PASSWORD, is_staff=True)
    user.groups.add(role(group))
    return user
