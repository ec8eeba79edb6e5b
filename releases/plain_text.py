"""Staff-typed text shown to fans (names, titles, the page's words, the playlist name) holds no control
characters: a NUL is refused by PostgreSQL (a 500), and a line break, an escape or an invisible character pasted
with a name reaches the fan page, emails, CSVs and the services as it is. A textarea's own tab and line breaks are
allowed. Nor does it hold the invisible characters that change how text reads (zero-width spaces, the word joiner,
bidi marks (the Arabic letter mark among them), embeddings, overrides and isolates, a byte order mark, the invisible
maths operators U+2061-U+2064, the Mongolian vowel separator, the soft hyphen, the combining grapheme joiner): a
right-to-left override makes a name read otherwise than it is, a soft hyphen splits a word where it wraps and keeps
it from matching a search; the two joiners emoji sequences and some scripts need (ZWNJ U+200C, ZWJ U+200D) are
allowed."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.db import models

SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, \n and \r are a textarea's
INVISIBLE = re.compile("[\u00ad\u034f\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def refuse_invisible_characters(
    instance: models.Model,
    fields: tuple[str, ...],
    multiline: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
):
    """For a model's clean(): a ValidationError naming each of `fields` (and `multiline` ones) that holds a control
    character, or an invisible character that changes how the text reads (named). A field is called by its verbose
    name, or by `labels[name]` when that reads better in "The … can't hold"."""
    errors = {}
    for name in (*fields, *multiline):
        label = (labels or {}).get(name) or instance._meta.get_field(name).verbose_name
        pattern = MULTILINE if name in multiline else SINGLE_LINE
        if pattern.search(getattr(instance, name) or ""):
            allowed = "other than tabs and line breaks" if name in multiline else "such as a line break or a tab"
            errors[name] = (
                f"The {label} can't hold control characters ({allowed}); one may have been pasted with the text, "
                "invisible: type it again."
            )
        elif found := INVISIBLE.findall(getattr(instance, name) or ""):
            found = list(dict.fromkeys(found))
            named = " or ".join(a_name(c) for c in found)
            what = "invisible characters that change" if len(found) > 1 else "an invisible character that changes"
            they = "they" if len(found) > 1 else "it"
            errors[name] = (
                f"The {label} can't hold {named}, {what} how the text reads; {they} may have been pasted with the "
                "text: type it again."
            )
    if errors:
        raise ValidationError(errors)


def a_name(character: str) -> str:
    """A character named with its article: "a soft hyphen (U+00AD)", "an invisible times (U+2062)"."""
    name = unicodedata.name(character).lower()
    article = "an" if name[0] in "aeiou" else "a"
    return f"{article} {name} (U+{ord(character):04X})"
