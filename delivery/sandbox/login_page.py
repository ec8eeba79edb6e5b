"""The sandbox's login and consent page (Spotify's and Deezer's), its error page, and who logged in. No
JavaScript.

Browser tests rely on these stable hooks: radios `input[name=user][value=<id>]`, the text field
`input[name=new_user]`, and the buttons `#agree` and `#cancel`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from html import escape

from aiohttp import web

from delivery.sandbox.state import SandboxState, User

MAX_LISTED_USERS = 50

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; background: #121212; color: #fff; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; padding: 2rem; background: #1e1e1e; border-radius: 12px; }
h1 { font-size: 1.4rem; margin-top: 0; } small, .muted { color: #b3b3b3; }
fieldset { border: 1px solid #333; border-radius: 8px; margin: 1rem 0; }
label { display: block; padding: .2rem 0; }
input[type=text] { width: 100%; padding: .4rem; box-sizing: border-box; }
.error { background: #e22134; padding: .5rem .8rem; border-radius: 6px; }
.buttons { display: flex; gap: .8rem; margin-top: 1.2rem; }
button { flex: 1; padding: .6rem; border: 0; border-radius: 999px; font-weight: 700; cursor: pointer; }
#agree { background: #1ed760; color: #000; }
#cancel { background: transparent; color: #fff; border: 1px solid #777; }
"""


def login_page(
    *,
    client_name: str,
    params: Mapping[str, str],
    scope_words: Iterable[str],
    users: Sequence[User],
    error: str = "",
    service: str = "Spotify",
    action: str = "/spotify/accounts/authorize/decide",
) -> str:
    """The page /authorize shows: what the app asks for, who logs in (the first MAX_LISTED_USERS of `users`),
    Agree or Cancel (posted to `action`)."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in params.items()
    )
    scopes = "".join(f"<li>{escape(words)}</li>" for words in scope_words) or "<li>Nothing but your name</li>"
    radios = "".join(
        f'<label><input type="radio" name="user" value="{escape(user.id)}"> {escape(user.display_name)} '
        f"<small>{escape(user.email)} · {escape(user.country)}</small></label>"
        for user in users[:MAX_LISTED_USERS]
    )
    more = len(users) - MAX_LISTED_USERS
    if more > 0:
        radios += f'<p class="muted">…and {more} more: type a name below to log in as one of them.</p>'
    error_html = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""
<h1>Log in to {escape(service)} (sandbox)</h1>
<p><strong>{escape(client_name)}</strong> would like to:</p>
<ul>{scopes}</ul>
{error_html}
<form method="post" action="{escape(action)}">
  {hidden}
  <fieldset><legend>Log in as</legend>{radios}</fieldset>
  <label for="new_user">…or a new user</label>
  <input type="text" id="new_user" name="new_user" placeholder="Name, e.g. Dana Fox" autocomplete="off">
  <div class="buttons">
    <button type="submit" id="agree" name="decision" value="agree">Agree</button>
    <button type="submit" id="cancel" name="decision" value="cancel">Cancel</button>
  </div>
</form>"""
    return _document(body)


def error_page(message: str) -> str:
    """Spotify's accounts service shows errors it cannot send back to the app as a plain page."""
    return _document(f'<h1>Oops! Something went wrong</h1><p class="error">{escape(message)}</p>')


def page_error(message: str) -> web.HTTPBadRequest:
    """The error page as a 400, to raise from a handler."""
    return web.HTTPBadRequest(text=error_page(message), content_type="text/html")


def chosen_user(state: SandboxState, user_id: str, new_user: str) -> str | None:
    """The user who logged in: a typed name (created when new) wins over a chosen radio; None when neither
    names one."""
    if new_user.strip():
        user_slug = slug(new_user)
        if not user_slug:
            return None
        if user_slug not in state.users:
            state.add_user(user_slug, new_user.strip())
        return user_slug
    return user_id if user_id in state.users else None


def slug(name: str) -> str:
    """A user id from a typed name: "Dana Fox" → "dana-fox"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def _document(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Spotify sandbox — log in</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
