"""Staff-typed text shown to fans (names, titles, the page's words) holds no control characters: a NUL is refused
by PostgreSQL (a 500), and a line break, an escape or an invisible character pasted with a name reaches the fan
page, emails, CSVs and the services as it is. A textarea's own tab and line breaks are allowed."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, \n and \r are a textarea's


def refuse_control_characters(instance: models.Model, fields: tuple[str, ...], multiline: tuple[str, ...] = ()):
    """For a model's clean(): a ValidationError naming each of `fields` (and `multiline` ones) that holds one."""
    errors = {}
    for name in (*fields, *multiline):
        pattern = MULTILINE if name in multiline else SINGLE_LINE
        if pattern.search(getattr(instance, name) or ""):
            label = instance._meta.get_field(name).verbose_name
            allowed = "other than tabs and line breaks" if name in multiline else "such as a line break or a tab"
            errors[name] = (
                f"The {label} can't hold control characters ({allowed}); one may have been pasted with the text, "
                "invisible: type it again."
            )
    if errors:
        raise ValidationError(errors)
