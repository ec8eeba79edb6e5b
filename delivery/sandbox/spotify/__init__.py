"""Spotify's Accounts service and Web API, as documented, served under `/spotify`.

`/spotify/accounts` stands for https://accounts.spotify.com and `/spotify/api` for https://api.spotify.com,
so a real Spotify client works against the sandbox with only its base URLs changed. Paths, methods, status
codes, headers and error bodies follow developer.spotify.com; each handler names the page it follows.

`app.py` puts the parts together: `accounts.py` (authorize, token), `users.py` (/v1/me), `library.py`,
`playlists.py` and `catalog.py`; they share `access.py` (the token check), `params.py`, `urls.py` and
`errors.py`.
"""

from delivery.sandbox.spotify.accounts import SCOPES
from delivery.sandbox.spotify.app import make_spotify_app
from delivery.sandbox.spotify.urls import PREFIX

__all__ = ["PREFIX", "SCOPES", "make_spotify_app"]
