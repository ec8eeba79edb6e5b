"""Console pages reached by addresses and forms edited by hand: a 400 or a message, never a 500 or an oracle."""

from __future__ import annotations

import ipaddress

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.db import models
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest


def is_id(value: str) -> bool:
    """Whether a query-string value can be a primary key (ASCII digits: "²".isdigit() is true too)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


TEXT_LOOKUPS = {"contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "iexact", "isnull"}


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class KeysOnlyAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget, re-showing a form posted by hand with something that is no key (artist=abc):
    Django's looks the value up as it is, and a non-number raises ValueError, a 500 in place of "Select a valid
    choice". The field still says that; the widget shows nothing chosen."""

    def optgroups(self, name, value, attr=None):
        return super().optgroups(name, [v for v in value if is_id(str(v))], attr)


class HandMadeInput:
    """A ModelAdmin mixin for addresses and forms the console never makes itself, edited by hand: a 400 or a
    message, not a 500 and not an oracle. Actions act on ids only; the query string may not filter by a
    regular expression (PostgreSQL refuses a bad one, and a slow one runs on), by a field the admin leaves
    out (`exclude`, such as a revoke token's hash), or by an IP address that isn't one; an autocomplete field
    posted with something that is no key is refused by its field, not a 500 (KeysOnlyAutocompleteSelect)."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        name, *lookups = lookup.split(LOOKUP_SEP)
        if name in (self.exclude or ()) or any(part in ("regex", "iregex") for part in lookups):
            return False
        field = next((f for f in self.model._meta.concrete_fields if f.name == name), None)
        compared_as_ip = isinstance(field, models.GenericIPAddressField) and not set(lookups) & TEXT_LOOKUPS
        if compared_as_ip and not all(is_ip(part) for part in value.split(",")):
            return False
        return super().lookup_allowed(lookup, value, request)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.get_autocomplete_fields(request) and "widget" not in kwargs:
            kwargs["widget"] = KeysOnlyAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def response_action(self, request: HttpRequest, queryset: QuerySet):
        if not all(is_id(pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)):
            self.message_user(request, "No such items: nothing was changed.", messages.WARNING)
            return None
        return super().response_action(request, queryset)
