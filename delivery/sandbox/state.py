"""The sandbox's in-memory world: users, clients, tokens, catalog, libraries, logs and fault switches.

Plain dataclasses and the few operations on them; no I/O. Everything a request touches is a dict lookup, so
the sandbox stays fast with thousands of fans. The server runs on one asyncio loop, so no locks are needed.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import string
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

AUTH_CODE_SECONDS = 10 * 60
ACCESS_TOKEN_SECONDS = 3600
# Refresh tokens expire six months after the user authorized, however often they were refreshed.
# developer.spotify.com/blog/2026-06-18-refresh-token-expiration
AUTHORIZATION_LIFETIME_SECONDS = 182 * 24 * 3600

BASE62 = string.digits + string.ascii_letters
_BASE62_ID = re.compile(r"[0-9A-Za-z]{22}")


def is_base62_id(value: str) -> bool:
    """Whether `value` looks like a Spotify id: 22 base62 characters."""
    return _BASE62_ID.fullmatch(value) is not None


def base62_id(seed: str) -> str:
    """A 22-character base62 id derived from `seed`: the same seed always gives the same id."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


@dataclass
class Client:
    """A registered app. An empty `redirect_uris` list accepts any http(s) redirect URI."""

    id: str
    secret: str
    name: str = "Sandbox app"
    redirect_uris: list[str] = field(default_factory=list)

    def accepts_redirect_uri(self, uri: str) -> bool:
        if self.redirect_uris:
            return uri in self.redirect_uris
        return uri.startswith(("http://", "https://"))


@dataclass
class MusicKitKey:
    """A developer's MusicKit key as Apple knows it: key id, team id and the public half (PEM)."""

    key_id: str
    team_id: str
    public_key_pem: str


@dataclass
class User:
    id: str
    display_name: str
    email: str
    country: str
    product: str = "premium"
    # The stable account key Spotify added to /v1/me in May 2026, distinct from `id`.
    account_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.account_id = base62_id(f"account:{self.id}")


@dataclass
class AuthCode:
    code: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None  # S256 challenge when the app used PKCE
    issued_at: float


@dataclass
class Grant:
    """One token chain: a user's authorization of a client and every refresh that followed it."""

    user_id: str
    client_id: str
    scope: str
    authorized_at: float
    public: bool  # obtained with PKCE and no secret: refreshing needs only the client id
    refresh_token: str = ""
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    client_id: str
    scopes: frozenset[str]
    expires_at: float
    user_id: str | None  # None for an app token (client credentials)
    service: str = "spotify"  # whose API accepts it: spotify, deezer or apple_music


@dataclass
class Artist:
    id: str
    name: str
    genres: list[str] = field(default_factory=list)


@dataclass
class Album:
    id: str
    name: str
    upc: str
    artist_id: str
    release_date: str
    total_tracks: int
    available_markets: list[str]
    release_date_precision: str = "day"
    album_type: str = "album"
    label: str = ""


@dataclass
class Track:
    id: str
    name: str
    isrc: str
    album_id: str
    artist_id: str
    available_markets: list[str]
    track_number: int = 1
    disc_number: int = 1
    duration_ms: int = 200_000
    explicit: bool = False


@dataclass
class Library:
    saved: dict[str, float] = field(default_factory=dict)  # album/track URI → when saved
    following: dict[str, float] = field(default_factory=dict)  # artist URI → when followed
    playlists: list[str] = field(default_factory=list)  # ids of the playlists the user made, oldest first


@dataclass
class Playlist:
    """A Spotify playlist: its items are track URIs in order, duplicates kept (Spotify adds what it is sent)."""

    id: str
    owner_id: str
    name: str
    public: bool
    collaborative: bool
    description: str
    items: list[str] = field(default_factory=list)
    version: int = 1  # counted up by each change: the snapshot id's source


@dataclass
class Write:
    """One library or follow write, as it arrived (duplicates included)."""

    user_id: str
    uri: str
    endpoint: str  # e.g. "PUT /v1/me/library"
    at: float


@dataclass
class Counters:
    requests: int = 0
    token_requests: int = 0
    api_requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    writes: int = 0
    writes_per_user: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0  # API and token requests being answered now
    most_in_flight: int = 0  # the most at once since the counters were cleared (a client's concurrency, seen)
    connections: int = 0  # TCP connections service requests came on (a client that keeps them alive opens few)


@dataclass
class Faults:
    """Switches the control API flips. The defaults are a healthy Spotify in development mode."""

    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of API and token requests answered 500/502/503
    timeout_rate: float = 0.0  # share of API and token requests that hang for hang_seconds
    errors_matching: str = ""  # API and token requests whose path or query contains this text answer 503
    # The next this many requests errors_matching names still get through (counted down): an endpoint that goes
    # down mid-delivery, e.g. the fifth of an album's playlist adds.
    errors_matching_after: int = 0
    hang_seconds: float = 30.0
    rate_limit: int | None = None  # requests per client app per rolling 30 s window; None: unlimited
    quota_exceeded: bool = False  # 429s carry reason QUOTA_EXCEEDED
    rotate_refresh_tokens: bool = True
    development_mode: bool = True  # hide fields Spotify removed in development mode (February 2026)
    # Development mode's user list (the app's Developer Dashboard, at most 5 users since February 2026): when
    # set, Web API calls with another user's token answer 403 "User not registered in the Developer Dashboard"
    # (in plain text, as Spotify does).
    registered_users: list[str] | None = None
    # The app owner's Premium lapsed (development mode needs it since February 2026): every Web API call
    # answers 403 in plain text, until it is switched off.
    owner_premium_lapsed: bool = False
    clock_offset_seconds: float = 0.0  # moves the sandbox's clock for expiry checks
    apple_ignores_library_adds: bool = False  # Apple's library add answers 202 and adds nothing (pre-order gone)
    # Apple answers 401 to these users' Music-User-Tokens (their authorization no longer honoured: Apple's docs say
    # the user must authorize again on a 401 or 403); the developer token is still accepted everywhere else.
    apple_unauthorized_users: list[str] | None = None
    # These users' Apple IDs have no Apple Music subscription: their personal calls answer 400, code 40015
    # "Insufficient Privileges", as Apple does.
    apple_unsubscribed_users: list[str] | None = None
    # MusicKit key ids revoked in the developer account: developer tokens they signed answer 401 everywhere.
    apple_revoked_keys: list[str] | None = None
    # Deezer's CDN or firewall answers every API request 403 with an HTML page (no Deezer error body), as an
    # edge block does: not the fans' tokens.
    deezer_edge_denies: bool = False
    seed: int | None = None


@dataclass
class SandboxState:
    clients: dict[str, Client]
    # Apps registered with the other services, by service key (Deezer: app id and secret).
    service_apps: dict[str, Client] = field(default_factory=dict)
    # MusicKit keys whose developer tokens Apple Music accepts, by key id.
    musickit_keys: dict[str, MusicKitKey] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    rng: random.Random = field(default_factory=random.Random)
    users: dict[str, User] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    grants_by_user: dict[str, list[Grant]] = field(default_factory=dict)
    artists: dict[str, Artist] = field(default_factory=dict)
    albums: dict[str, Album] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    albums_by_upc: dict[str, list[str]] = field(default_factory=dict)
    tracks_by_isrc: dict[str, list[str]] = field(default_factory=dict)
    album_tracks: dict[str, list[str]] = field(default_factory=dict)
    # Other services' own ids for catalog items (Apple's catalog ids, Deezer's numeric ids): each service
    # derives them from the catalog id (`id_schemes`, set by `use_service_ids`), and `service_ids` finds the
    # catalog id back in one lookup; both indexes are kept in step as the catalog grows.
    id_schemes: dict[str, Callable[[str, str], str]] = field(default_factory=dict)
    service_ids: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (service, kind, its id) → id
    artist_followers: Counter[str] = field(default_factory=Counter)
    libraries: dict[str, Library] = field(default_factory=dict)
    playlists: dict[str, Playlist] = field(default_factory=dict)  # by id
    writes: list[Write] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    connected: weakref.WeakSet = field(default_factory=weakref.WeakSet)  # the connections counted (`connections`)
    # client id → monotonic times of that app's requests inside the rate-limit window
    windows: dict[str, deque[float]] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything except the registered clients: faults off, no users, catalog or logs."""
        for f in fields(self):
            if f.name not in ("clients", "service_apps", "musickit_keys", "id_schemes"):
                setattr(self, f.name, f.default_factory())  # type: ignore[misc]

    def now(self) -> float:
        """The sandbox's wall clock (moved by the clock_offset_seconds switch)."""
        return time.time() + self.faults.clock_offset_seconds

    def set_seed(self, seed: int | None) -> None:
        self.faults.seed = seed
        self.rng.seed(seed)

    # Users

    def add_user(self, user_id: str, display_name: str = "", email: str = "", country: str = "GB") -> tuple[User, bool]:
        """Create or replace a user; returns the user and whether it is new."""
        created = user_id not in self.users
        user = User(user_id, display_name or user_id, email or f"{user_id}@sandbox.test", country)
        self.users[user_id] = user
        return user, created

    def library(self, user_id: str) -> Library:
        library = self.libraries.get(user_id)
        if library is None:
            library = self.libraries[user_id] = Library()
        return library

    # Authorization

    def issue_code(
        self, client_id: str, user_id: str, redirect_uri: str, scope: str, code_challenge: str | None
    ) -> AuthCode:
        code = "AQ" + secrets.token_urlsafe(48)
        auth_code = AuthCode(code, client_id, user_id, redirect_uri, scope, code_challenge, self.now())
        self.codes[code] = auth_code
        return auth_code

    def take_code(self, code: str) -> AuthCode | None:
        """Use up an authorization code: None when unknown, already used or expired."""
        auth_code = self.codes.pop(code, None)
        if auth_code is None or self.now() > auth_code.issued_at + AUTH_CODE_SECONDS:
            return None
        return auth_code

    def authorize(self, user_id: str, client_id: str, scope: str, *, public: bool) -> Grant:
        """Start a token chain: the user just agreed. Mint its first refresh token."""
        grant = Grant(user_id, client_id, scope, authorized_at=self.now(), public=public)
        self.grants_by_user.setdefault(user_id, []).append(grant)
        self.rotate_refresh_token(grant)
        return grant

    def rotate_refresh_token(self, grant: Grant) -> str:
        """Give the chain a new refresh token; the previous one stops working."""
        self.refresh_tokens.pop(grant.refresh_token, None)
        grant.refresh_token = "AQ" + secrets.token_urlsafe(96)
        self.refresh_tokens[grant.refresh_token] = grant
        return grant.refresh_token

    def issue_access_token(self, client_id: str, grant: Grant | None = None) -> AccessToken:
        """A 3600-second access token for a user's chain, or an app token when `grant` is None."""
        token = AccessToken(
            token="BQ" + secrets.token_urlsafe(96),
            client_id=client_id,
            scopes=frozenset(grant.scope.split()) if grant else frozenset(),
            expires_at=self.now() + ACCESS_TOKEN_SECONDS,
            user_id=grant.user_id if grant else None,
        )
        self.access_tokens[token.token] = token
        if grant is not None:
            grant.access_tokens.add(token.token)
        return token

    def issue_lasting_token(self, service: str, client_id: str, user_id: str, scope: str, prefix: str) -> AccessToken:
        """A token that never expires (Deezer's offline_access, Apple's Music-User-Token), in a chain of its
        own so that revoke_user ends it."""
        grant = Grant(user_id, client_id, scope, authorized_at=self.now(), public=False)
        self.grants_by_user.setdefault(user_id, []).append(grant)
        token = AccessToken(
            token=prefix + secrets.token_urlsafe(64),
            client_id=client_id,
            scopes=frozenset(scope.replace(",", " ").split()),
            expires_at=float("inf"),
            user_id=user_id,
            service=service,
        )
        self.access_tokens[token.token] = token
        grant.access_tokens.add(token.token)
        return token

    def revoke_user(self, user_id: str) -> int:
        """The user removed the app: every chain dies, access tokens at once. Returns the chains revoked."""
        grants = [grant for grant in self.grants_by_user.get(user_id, []) if not grant.revoked]
        for grant in grants:
            grant.revoked = True
            for token in grant.access_tokens:
                self.access_tokens.pop(token, None)
            grant.access_tokens.clear()
        return len(grants)

    def age_user(self, user_id: str, seconds: float) -> int:
        """Move the authorized_at of the user's chains `seconds` into the past. Returns the chains moved."""
        grants = self.grants_by_user.get(user_id, [])
        for grant in grants:
            grant.authorized_at -= seconds
        return len(grants)

    # Catalog

    def add_artist(self, artist: Artist) -> None:
        self.artists[artist.id] = artist
        self._index_service_ids("artist", artist.id)

    def add_album(self, album: Album) -> None:
        old = self.albums.get(album.id)
        if old is not None:
            self.albums_by_upc[old.upc].remove(old.id)
        self.albums[album.id] = album
        self.albums_by_upc.setdefault(album.upc, []).append(album.id)
        self._index_service_ids("album", album.id)

    def track_markets(self, track: Track) -> list[str]:
        """Where a track is out: where it and its album both are (the per-market switch is the album's,
        /_sandbox/catalog/albums/<id>/markets), however a service asks for it: by id, by ISRC, in its album's list."""
        album = self.albums.get(track.album_id)
        if album is None:
            return list(track.available_markets)
        return [market for market in track.available_markets if market in album.available_markets]

    def add_track(self, track: Track) -> None:
        old = self.tracks.get(track.id)
        if old is not None:
            self.tracks_by_isrc[old.isrc].remove(old.id)
            self.album_tracks[old.album_id].remove(old.id)
        self.tracks[track.id] = track
        self.tracks_by_isrc.setdefault(track.isrc, []).append(track.id)
        self.album_tracks.setdefault(track.album_id, []).append(track.id)
        self._index_service_ids("track", track.id)

    def find_by_code(self, kind: str, code: str) -> list[Album] | list[Track]:
        """The albums whose UPC is `code` (kind "album") or the tracks whose ISRC is `code` ("track")."""
        if kind == "album":
            return [self.albums[i] for i in self.albums_by_upc.get(code, [])]
        return [self.tracks[i] for i in self.tracks_by_isrc.get(code.upper(), [])]

    # Other services' ids

    def use_service_ids(self, service: str, derive: Callable[[str, str], str]) -> None:
        """Index `service`'s ids for every catalog item, now and as items are added; `derive(kind, catalog id)`
        makes one (kind: album, track or artist)."""
        self.id_schemes[service] = derive
        for kind, catalog in (("artist", self.artists), ("album", self.albums), ("track", self.tracks)):
            for item_id in catalog:
                self.service_ids[(service, kind, derive(kind, item_id))] = item_id

    def find_by_service_id(self, service: str, kind: str, service_id: str) -> str | None:
        """The catalog id of the `kind` item that `service` knows as `service_id`; None when there is none."""
        return self.service_ids.get((service, kind, service_id))

    def _index_service_ids(self, kind: str, item_id: str) -> None:
        for service, derive in self.id_schemes.items():
            self.service_ids[(service, kind, derive(kind, item_id))] = item_id

    # Libraries and follows

    def save(self, user_id: str, uri: str, endpoint: str) -> None:
        """Save an album/track URI or follow an artist URI; logged every time, held once. Other services'
        writes use their key with the catalog id: `deezer:album:<id>`, `apple_music:album:<id>`."""
        library = self.library(user_id)
        if ":artist:" in uri:
            if uri not in library.following:
                library.following[uri] = self.now()
                self.artist_followers[uri] += 1
        else:
            library.saved.setdefault(uri, self.now())
        self._log(user_id, uri, endpoint)

    def remove(self, user_id: str, uri: str, endpoint: str) -> None:
        """Remove an album/track URI or unfollow an artist URI; logged every time."""
        library = self.library(user_id)
        if ":artist:" in uri:
            if library.following.pop(uri, None) is not None:
                self.artist_followers[uri] -= 1
        else:
            library.saved.pop(uri, None)
        self._log(user_id, uri, endpoint)

    def create_playlist(
        self, user_id: str, name: str, *, public: bool, collaborative: bool, description: str, endpoint: str
    ) -> Playlist:
        """A new playlist of `user_id`'s (logged as a write of its URI)."""
        playlist_id = "".join(secrets.choice(BASE62) for _ in range(22))
        playlist = Playlist(playlist_id, user_id, name, public, collaborative, description)
        self.playlists[playlist_id] = playlist
        self.library(user_id).playlists.append(playlist_id)
        self._log(user_id, f"spotify:playlist:{playlist_id}", endpoint)
        return playlist

    def add_to_playlist(self, user_id: str, playlist: Playlist, uris: list[str], endpoint: str) -> None:
        """Append `uris` to `playlist` as `user_id` (each logged as a write)."""
        playlist.items.extend(uris)
        playlist.version += 1
        for uri in uris:
            self._log(user_id, uri, endpoint)

    def contains(self, user_id: str, uri: str) -> bool:
        library = self.library(user_id)
        return uri in (library.following if ":artist:" in uri else library.saved)

    def _log(self, user_id: str, uri: str, endpoint: str) -> None:
        self.writes.append(Write(user_id, uri, endpoint, self.now()))
        self.counters.writes += 1
        self.counters.writes_per_user[user_id] += 1
