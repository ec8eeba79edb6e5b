"""The sandbox's Spotify login and consent page, and its error page. No JavaScript.

Browser tests rely on these stable hooks: radios `input[name=user][value=<id>]`, the text field
`input[name=new_user]`, and the buttons `#agree` and `#cancel`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from delivery.sandbox.state import User

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
    users: Iterable[User],
    user_count: int,
    error: str = "",
    service: str = "Spotify",
    action: str = "/spotify/accounts/authorize/decide",
) -> str:
    """The page /authorize shows: what the app asks for, who logs in, Agree or Cancel (posted to `action`)."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in params.items()
    )
    scopes = "".join(f"<li>{escape(words)}</li>" for words in scope_words) or "<li>Nothing but your name</li>"
    radios = "".join(
        f'<label><input type="radio" name="user" value="{escape(user.id)}"> {escape(user.display_name)} '
        f"<small>{escape(user.email)} · {escape(user.country)}</small></label>"
        for user in users
    )
    more = user_count - MAX_LISTED_USERS
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


def _document(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Spotify sandbox — log in</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
