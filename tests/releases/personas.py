"""The console's personas: label staff and managers, as the roles migration defines them."""

from django.contrib.auth.models import Group, User


def member_of(group: str, username: str) -> User:
    user = User.objects.create_user(username, f"{username}@label.test", "staff-password-3", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user
