"""The Spotify sandbox over real HTTP: the Accounts service, the Web API, faults and the control API.

No database: the sandbox runs in a thread (conftest's `sandbox_server`) and is reset before each test.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from delivery.sandbox.demo_catalog import (
    NOVA_LARK_ALBUM_ID,
    NOVA_LARK_ALBUM_UPC,
    NOVA_LARK_ARTIST_ID,
    NOVA_LARK_TRACK_1_ID,
    NOVA_LARK_TRACK_1_ISRC,
    PAPER_TIDES_ALBUM_ID,
)
from delivery.sandbox.server import start_in_thread
from tests.sandbox.conftest import CLIENT, refresh

REDIRECT_URI = "http://127.0.0.1:8000/fans/spotify/callback"
ALBUM_URI = f"spotify:album:{NOVA_LARK_ALBUM_ID}"
TRACK_URI = f"spotify:track:{NOVA_LARK_TRACK_1_ID}"
ARTIST_URI = f"spotify:artist:{NOVA_LARK_ARTIST_ID}"
SAVE_SCOPES = "user-library-modify user-library-read user-follow-modify user-follow-read"


# --- helpers ------------------------------------------------------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT[0],
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": "st4te",
        "scope": "user-library-modify user-read-email",
    }
    params.update(overrides)
    return params


def log_in(sb, params: dict[str, str], *, user: str = "alice", new_user: str = "", decision: str = "agree"):
    """Open the login page, then submit its form (hidden fields as the page carries them)."""
    page = requests.get(f"{sb.accounts_url}/authorize", params=params, timeout=5)
    assert page.status_code == 200, page.text
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
    form = {name: html.unescape(value) for name, value in hidden}
    form.update(user=user, new_user=new_user, decision=decision)
    return requests.post(f"{sb.accounts_url}/authorize/decide", data=form, allow_redirects=False, timeout=5)


def redirect_query(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def exchange(sb, code: str, *, verifier: str | None = None, basic: bool = True, **extra: str):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, **extra}
    if verifier is not None:
        form["code_verifier"] = verifier
    if not basic:
        form["client_id"] = CLIENT[0]
    return requests.post(f"{sb.accounts_url}/api/token", data=form, auth=CLIENT if basic else None, timeout=5)


def api(sb, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{sb.api_url}{path}", headers=headers, timeout=5, **kwargs)


def tokens_for(sb, user: str = "alice", scope: str = SAVE_SCOPES) -> dict:
    return sb.authorize(user, scope)


# --- Accounts service: authorization code flow ------------------------------------------------------------
def test_pkce_code_flow_returns_tokens_that_read_the_profile(sb):
    verifier, challenge = pkce_pair()
    params = authorize_params(code_challenge_method="S256", code_challenge=challenge)
    query = redirect_query(log_in(sb, params, user="alice"))
    assert query["state"] == "st4te"

    response = exchange(sb, query["code"], verifier=verifier, basic=False)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "user-library-modify user-read-email"
    assert body["refresh_token"]
    me = api(sb, "GET", "/v1/me", body["access_token"]).json()
    assert me["id"] == "alice"
    assert me["uri"] == "spotify:user:alice"
    assert me["type"] == "user"
    assert me["email"] == "alice@sandbox.test"
    assert me["account_id"] and me["account_id"] != "alice"
    assert "country" not in me  # development mode


def test_basic_auth_code_flow_creates_a_user_typed_on_the_login_page(sb):
    query = redirect_query(log_in(sb, authorize_params(scope="user-library-modify"), new_user="Dana Fox"))

    response = exchange(sb, query["code"])

    assert response.status_code == 200, response.text
    me = api(sb, "GET", "/v1/me", response.json()["access_token"]).json()
    assert (me["id"], me["display_name"]) == ("dana-fox", "Dana Fox")
    assert "email" not in me  # no user-read-email scope
    users = {user["id"]: user for user in sb.control("GET", "users")}
    assert users["dana-fox"]["email"] == "dana-fox@sandbox.test"
    assert users["dana-fox"]["country"] == "GB"


def test_confidential_client_may_add_pkce_and_both_are_checked(sb):
    verifier, challenge = pkce_pair()
    params = authorize_params(code_challenge_method="S256", code_challenge=challenge)
    query = redirect_query(log_in(sb, params))

    assert exchange(sb, query["code"], verifier=verifier).status_code == 200


def test_login_page_lists_scopes_and_users_with_stable_hooks(sb):
    page = requests.get(f"{sb.accounts_url}/authorize", params=authorize_params(), timeout=5)

    assert "<title>Spotify sandbox — log in</title>" in page.text
    assert "Manage your saved content" in page.text
    assert "Get your real email address" in page.text
    for user in ("alice", "bob", "chloe"):
        assert f'name="user" value="{user}"' in page.text
    assert 'name="new_user"' in page.text
    assert 'id="agree"' in page.text and 'id="cancel"' in page.text
    assert 'action="/spotify/accounts/authorize/decide"' in page.text


def test_cancel_redirects_with_access_denied_and_the_state(sb):
    query = redirect_query(log_in(sb, authorize_params(), decision="cancel"))

    assert query == {"error": "access_denied", "state": "st4te"}


def test_agree_without_choosing_a_user_shows_the_page_again(sb):
    response = log_in(sb, authorize_params(), user="")

    assert response.status_code == 400
    assert "Choose a user" in response.text


def test_authorize_refuses_unknown_clients_and_bad_redirect_uris_on_a_page(sb):
    url = f"{sb.accounts_url}/authorize"

    unknown = requests.get(url, params=authorize_params(client_id="nope"), timeout=5)
    bad_redirect = requests.get(url, params=authorize_params(redirect_uri="ftp://x/cb"), timeout=5)
    bad_scope = requests.get(url, params=authorize_params(scope="user-mind-read"), timeout=5)

    assert unknown.status_code == 400 and "INVALID_CLIENT: Invalid client" in unknown.text
    assert bad_redirect.status_code == 400 and "INVALID_CLIENT: Invalid redirect URI" in bad_redirect.text
    assert bad_scope.status_code == 400 and "Illegal scope" in bad_scope.text


def test_only_registered_redirect_uris_are_accepted_when_the_app_lists_some():
    url, stop = start_in_thread(client_id="label-app", client_secret="s3cret", redirect_uris=[REDIRECT_URI])
    try:
        listed = requests.get(
            f"{url}/spotify/accounts/authorize", params=authorize_params(client_id="label-app"), timeout=5
        )
        other = requests.get(
            f"{url}/spotify/accounts/authorize",
            params=authorize_params(client_id="label-app", redirect_uri="http://127.0.0.1:8000/elsewhere"),
            timeout=5,
        )
    finally:
        stop()

    assert listed.status_code == 200
    assert other.status_code == 400 and "INVALID_CLIENT: Invalid redirect URI" in other.text


def test_authorize_sends_unsupported_response_type_back_to_the_app(sb):
    response = requests.get(
        f"{sb.accounts_url}/authorize",
        params=authorize_params(response_type="token"),
        allow_redirects=False,
        timeout=5,
    )

    assert redirect_query(response) == {"error": "unsupported_response_type", "state": "st4te"}


def test_authorization_code_works_only_once(sb):
    code = redirect_query(log_in(sb, authorize_params()))["code"]
    assert exchange(sb, code).status_code == 200

    again = exchange(sb, code)

    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


def test_code_exchange_with_another_redirect_uri_is_invalid_grant(sb):
    code = redirect_query(log_in(sb, authorize_params()))["code"]

    response = requests.post(
        f"{sb.accounts_url}/api/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:8000/other",
        },
        auth=CLIENT,
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid redirect URI"}


def test_wrong_code_verifier_is_invalid_grant(sb):
    _, challenge = pkce_pair()
    params = authorize_params(code_challenge_method="S256", code_challenge=challenge)
    code = redirect_query(log_in(sb, params))["code"]

    response = exchange(sb, code, verifier="not-the-verifier" * 3, basic=False)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "code_verifier was incorrect"}


def test_code_expires_after_ten_minutes(sb):
    code = redirect_query(log_in(sb, authorize_params()))["code"]
    sb.faults(clock_offset_seconds=601)

    response = exchange(sb, code)

    assert response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(sb):
    code = redirect_query(log_in(sb, authorize_params()))["code"]

    response = requests.post(
        f"{sb.accounts_url}/api/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT[0], "wrong"),
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": "Invalid client secret"}


def test_unknown_grant_type_is_unsupported_grant_type(sb):
    response = requests.post(f"{sb.accounts_url}/api/token", data={"grant_type": "password"}, auth=CLIENT, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


# --- Accounts service: refresh tokens ---------------------------------------------------------------------
def test_refresh_token_rotates_and_old_one_dies(sb):
    first = tokens_for(sb)

    response = refresh(sb, first["refresh_token"])

    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert api(sb, "GET", "/v1/me", body["access_token"]).status_code == 200
    old = refresh(sb, first["refresh_token"])
    assert old.status_code == 400
    assert old.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    assert refresh(sb, body["refresh_token"]).status_code == 200


def test_without_rotation_the_refresh_token_is_kept(sb):
    sb.faults(rotate_refresh_tokens=False)
    first = tokens_for(sb)

    body = refresh(sb, first["refresh_token"]).json()

    assert "refresh_token" not in body
    assert refresh(sb, first["refresh_token"]).status_code == 200


def test_revoked_user_gets_refresh_token_revoked_and_dead_access_tokens(sb):
    tokens = tokens_for(sb)

    sb.control("POST", "users/alice/revoke")

    response = refresh(sb, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Refresh token revoked"}
    me = api(sb, "GET", "/v1/me", tokens["access_token"])
    assert me.status_code == 401
    assert me.json() == {"error": {"status": 401, "message": "Invalid access token"}}


def test_refresh_token_expires_six_months_after_authorization_however_often_refreshed(sb):
    tokens = tokens_for(sb)
    rotated = refresh(sb, tokens["refresh_token"]).json()["refresh_token"]

    sb.control("POST", "users/alice/age", {"days": 190})

    response = refresh(sb, rotated)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Refresh token expired"}


# --- Web API: access tokens and the profile ----------------------------------------------------------------
def test_me_answers_401_without_a_valid_token(sb):
    tokens = tokens_for(sb)

    missing = api(sb, "GET", "/v1/me", None)
    bad = api(sb, "GET", "/v1/me", "not-a-token")
    sb.faults(clock_offset_seconds=3601)
    expired = api(sb, "GET", "/v1/me", tokens["access_token"])

    assert missing.status_code == bad.status_code == expired.status_code == 401
    assert missing.json() == {"error": {"status": 401, "message": "No token provided"}}
    assert bad.json() == {"error": {"status": 401, "message": "Invalid access token"}}
    assert expired.json() == {"error": {"status": 401, "message": "The access token expired"}}
    assert expired.headers["WWW-Authenticate"].startswith('Bearer realm="spotify"')


def test_me_shows_country_only_outside_development_mode_with_user_read_private(sb):
    token = tokens_for(sb, "bob", "user-read-private")["access_token"]
    assert "country" not in api(sb, "GET", "/v1/me", token).json()

    sb.faults(development_mode=False)

    me = api(sb, "GET", "/v1/me", token).json()
    assert me["country"] == "US"
    assert "email" not in me


def test_app_token_can_search_but_cannot_read_a_profile(sb):
    token = requests.post(
        f"{sb.accounts_url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT, timeout=5
    ).json()["access_token"]

    me = api(sb, "GET", "/v1/me", token)
    search = api(sb, "GET", "/v1/search", token, params={"q": f"upc:{NOVA_LARK_ALBUM_UPC}", "type": "album"})

    assert me.status_code == 403
    assert me.json() == {"error": {"status": 403, "message": "Insufficient client scope"}}
    assert search.status_code == 200


# --- Web API: Your Library and follows ---------------------------------------------------------------------
def test_saving_twice_holds_the_album_once_and_logs_both_writes(sb):
    token = tokens_for(sb)["access_token"]

    first = api(sb, "PUT", "/v1/me/library", token, params={"uris": ALBUM_URI})
    second = api(sb, "PUT", "/v1/me/library", token, params={"uris": ALBUM_URI})

    assert first.status_code == second.status_code == 200
    assert first.content == b""
    assert sb.library("alice") == {"saved": [ALBUM_URI], "following": []}
    writes = sb.writes("alice")
    assert [(w["uri"], w["endpoint"]) for w in writes] == [(ALBUM_URI, "PUT /v1/me/library")] * 2
    counters = sb.control("GET", "counters")
    assert counters["writes"] == 2
    assert counters["writes_per_user"] == {"alice": 2}


def test_library_saves_albums_and_tracks_and_follows_artists_in_one_call(sb):
    token = tokens_for(sb)["access_token"]

    response = api(sb, "PUT", "/v1/me/library", token, params={"uris": f"{ALBUM_URI},{TRACK_URI},{ARTIST_URI}"})

    assert response.status_code == 200
    assert sb.library("alice") == {"saved": [ALBUM_URI, TRACK_URI], "following": [ARTIST_URI]}
    contains = api(sb, "GET", "/v1/me/library/contains", token, params={"uris": f"{ALBUM_URI},{TRACK_URI}"})
    assert contains.json() == [True, True]
    artist = api(sb, "GET", f"/v1/artists/{NOVA_LARK_ARTIST_ID}", token).json()
    assert artist["followers"]["total"] == 1


def test_library_removes_items(sb):
    token = tokens_for(sb)["access_token"]
    api(sb, "PUT", "/v1/me/library", token, params={"uris": ALBUM_URI})

    response = api(sb, "DELETE", "/v1/me/library", token, params={"uris": ALBUM_URI})

    assert response.status_code == 200
    assert api(sb, "GET", "/v1/me/library/contains", token, params={"uris": ALBUM_URI}).json() == [False]
    assert [w["endpoint"] for w in sb.writes("alice")] == ["PUT /v1/me/library", "DELETE /v1/me/library"]


def test_library_writes_need_the_right_scopes(sb):
    library_only = tokens_for(sb, scope="user-library-modify")["access_token"]
    read_only = tokens_for(sb, scope="user-library-read")["access_token"]

    follow = api(sb, "PUT", "/v1/me/library", library_only, params={"uris": ARTIST_URI})
    save = api(sb, "PUT", "/v1/me/library", read_only, params={"uris": ALBUM_URI})

    assert follow.status_code == save.status_code == 403
    assert save.json() == {"error": {"status": 403, "message": "Insufficient client scope"}}
    assert sb.writes() == []


def test_library_rejects_malformed_unknown_and_too_many_uris_without_saving(sb):
    token = tokens_for(sb)["access_token"]
    unknown = "spotify:album:" + "Z" * 22

    malformed = api(sb, "PUT", "/v1/me/library", token, params={"uris": f"{ALBUM_URI},spotify:album:xyz"})
    missing = api(sb, "PUT", "/v1/me/library", token, params={"uris": f"{ALBUM_URI},{unknown}"})
    too_many = api(sb, "PUT", "/v1/me/library", token, params={"uris": ",".join([ALBUM_URI] * 41)})

    assert malformed.json() == {"error": {"status": 400, "message": "Invalid base62 id"}}
    assert missing.json() == {"error": {"status": 400, "message": f"Non existing id: {unknown}"}}
    assert too_many.json() == {"error": {"status": 400, "message": "Too many ids requested"}}
    assert sb.writes() == []


def test_legacy_album_and_track_endpoints_take_ids_in_query_or_json_body(sb):
    token = tokens_for(sb)["access_token"]

    album = api(sb, "PUT", "/v1/me/albums", token, params={"ids": NOVA_LARK_ALBUM_ID})
    track = api(sb, "PUT", "/v1/me/tracks", token, json={"ids": [NOVA_LARK_TRACK_1_ID]})

    assert album.status_code == track.status_code == 200
    assert sb.library("alice")["saved"] == [ALBUM_URI, TRACK_URI]
    ids = f"{NOVA_LARK_ALBUM_ID},{PAPER_TIDES_ALBUM_ID}"
    assert api(sb, "GET", "/v1/me/albums/contains", token, params={"ids": ids}).json() == [True, False]
    assert api(sb, "GET", "/v1/me/tracks/contains", token, params={"ids": NOVA_LARK_TRACK_1_ID}).json() == [True]
    assert [w["endpoint"] for w in sb.writes("alice")] == ["PUT /v1/me/albums", "PUT /v1/me/tracks"]


def test_legacy_follow_answers_204_and_is_checked_by_contains(sb):
    token = tokens_for(sb)["access_token"]
    params = {"type": "artist", "ids": NOVA_LARK_ARTIST_ID}

    response = api(sb, "PUT", "/v1/me/following", token, params=params)

    assert response.status_code == 204
    assert api(sb, "GET", "/v1/me/following/contains", token, params=params).json() == [True]
    assert sb.library("alice")["following"] == [ARTIST_URI]
    assert sb.writes("alice")[0]["endpoint"] == "PUT /v1/me/following"


def test_legacy_save_without_ids_is_400(sb):
    token = tokens_for(sb)["access_token"]

    response = api(sb, "PUT", "/v1/me/albums", token)

    assert response.json() == {"error": {"status": 400, "message": "Missing required field: ids"}}


# --- Web API: catalog, search and markets ------------------------------------------------------------------
def test_search_finds_the_album_by_upc_in_the_documented_paging_shape(sb):
    token = tokens_for(sb)["access_token"]

    body = api(sb, "GET", "/v1/search", token, params={"q": f"upc:{NOVA_LARK_ALBUM_UPC}", "type": "album"}).json()

    albums = body["albums"]
    assert set(albums) == {"href", "items", "limit", "next", "offset", "previous", "total"}
    assert (albums["total"], albums["limit"], albums["offset"]) == (1, 20, 0)
    assert albums["next"] is None and albums["previous"] is None
    album = albums["items"][0]
    assert album["id"] == NOVA_LARK_ALBUM_ID
    assert album["uri"] == ALBUM_URI
    assert album["external_ids"] == {"upc": NOVA_LARK_ALBUM_UPC}
    assert album["artists"][0]["name"] == "Nova Lark"


def test_search_finds_the_track_by_isrc(sb):
    token = tokens_for(sb)["access_token"]

    body = api(sb, "GET", "/v1/search", token, params={"q": f"isrc:{NOVA_LARK_TRACK_1_ISRC}", "type": "track"}).json()

    assert [track["id"] for track in body["tracks"]["items"]] == [NOVA_LARK_TRACK_1_ID]
    assert body["tracks"]["items"][0]["external_ids"] == {"isrc": NOVA_LARK_TRACK_1_ISRC}


def test_album_and_track_have_the_documented_shapes(sb):
    token = tokens_for(sb)["access_token"]

    album = api(sb, "GET", f"/v1/albums/{NOVA_LARK_ALBUM_ID}", token).json()
    track = api(sb, "GET", f"/v1/tracks/{NOVA_LARK_TRACK_1_ID}", token).json()

    for key in (
        "album_type",
        "total_tracks",
        "release_date",
        "release_date_precision",
        "images",
        "external_urls",
    ):
        assert key in album
    assert album["type"] == "album"
    assert album["tracks"]["total"] == 2
    assert "available_markets" not in album  # removed in development mode
    assert track["album"]["id"] == NOVA_LARK_ALBUM_ID
    assert track["uri"] == TRACK_URI
    unknown = api(sb, "GET", "/v1/albums/" + "Z" * 22, token)
    assert unknown.status_code == 404


def test_release_outside_a_market_is_404_there_until_made_available(sb):
    token = tokens_for(sb, "bob")["access_token"]
    album = sb.control(
        "POST",
        "catalog/albums",
        {
            "name": "UK Exclusive",
            "upc": "5012345678917",
            "artist_id": NOVA_LARK_ARTIST_ID,
            "release_date": "2026-12-11",
            "available_markets": ["GB"],
        },
    )
    path = f"/v1/albums/{album['id']}"
    search = {"q": "upc:5012345678917", "type": "album", "market": "US"}

    assert api(sb, "GET", path, token, params={"market": "GB"}).status_code == 200
    outside = api(sb, "GET", path, token, params={"market": "US"})
    assert outside.status_code == 404
    assert outside.json() == {"error": {"status": 404, "message": "Resource not found"}}
    assert api(sb, "GET", path, token, params={"market": "from_token"}).status_code == 404  # bob is in the US
    assert api(sb, "GET", "/v1/search", token, params=search).json()["albums"]["total"] == 0
    saved = api(sb, "PUT", "/v1/me/library", token, params={"uris": album["uri"]})
    assert saved.status_code == 200  # saving does not depend on the market

    sb.control("POST", f"catalog/albums/{album['id']}/markets", {"available_markets": ["GB", "US"]})

    assert api(sb, "GET", path, token, params={"market": "US"}).json()["is_playable"] is True
    assert api(sb, "GET", "/v1/search", token, params=search).json()["albums"]["total"] == 1


def test_a_track_is_available_where_it_and_its_album_both_are(sb):
    """The market switch is the album's (/_sandbox/catalog/albums/<id>/markets): a track asked for on its own, by
    id or by ISRC, follows it, in `available_markets` as in `is_playable`, and so does the album inside it."""
    token = tokens_for(sb, "bob")["access_token"]
    sb.faults(development_mode=False)  # `available_markets` is shown outside development mode only
    sb.control("POST", f"catalog/albums/{NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    path = f"/v1/tracks/{NOVA_LARK_TRACK_1_ID}"
    search = {"q": f"isrc:{NOVA_LARK_TRACK_1_ISRC}", "type": "track"}

    track = api(sb, "GET", path, token).json()
    assert track["available_markets"] == track["album"]["available_markets"] == ["GB"]
    (found,) = api(sb, "GET", "/v1/search", token, params=search).json()["tracks"]["items"]
    assert found["available_markets"] == ["GB"]
    assert api(sb, "GET", path, token, params={"market": "US"}).status_code == 404
    assert api(sb, "GET", "/v1/search", token, params={**search, "market": "US"}).json()["tracks"]["total"] == 0

    sb.control("POST", f"catalog/albums/{NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB", "US"]})

    track = api(sb, "GET", path, token, params={"market": "US"}).json()
    assert track["is_playable"] is track["album"]["is_playable"] is True
    assert api(sb, "GET", "/v1/search", token, params={**search, "market": "US"}).json()["tracks"]["total"] == 1


# --- Faults -------------------------------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after_once_the_window_is_full(sb):
    token = tokens_for(sb)["access_token"]
    sb.faults(rate_limit=3)

    statuses = [api(sb, "GET", "/v1/me", token).status_code for _ in range(3)]
    limited = api(sb, "GET", "/v1/me", token)

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert limited.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    counters = sb.control("GET", "counters")
    assert (counters["rate_limited"], counters["window_limit"], counters["window_used"]) == (1, 3, 3)


def test_quota_exceeded_switch_changes_the_429_body(sb):
    token = tokens_for(sb)["access_token"]
    sb.faults(rate_limit=0, quota_exceeded=True)

    response = api(sb, "GET", "/v1/me", token)

    assert response.status_code == 429
    assert response.json() == {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}
    assert "Retry-After" in response.headers


def test_error_rate_one_answers_api_and_token_requests_with_5xx(sb):
    tokens = tokens_for(sb)
    sb.faults(error_rate=1)

    me = api(sb, "GET", "/v1/me", tokens["access_token"])
    token = refresh(sb, tokens["refresh_token"])
    page = requests.get(f"{sb.accounts_url}/authorize", params=authorize_params(), timeout=5)

    assert me.status_code in (500, 502, 503)
    assert me.json()["error"]["status"] == me.status_code
    assert token.status_code in (500, 502, 503)
    assert page.status_code == 200  # the login page is not an API call
    assert sb.control("GET", "counters")["server_errors"] == 2


def test_errors_matching_takes_down_one_endpoint_and_leaves_the_rest(sb):
    tokens = tokens_for(sb)
    sb.faults(errors_matching="spotify:artist:")

    follow = api(sb, "PUT", "/v1/me/library", tokens["access_token"], params={"uris": ARTIST_URI})
    save = api(sb, "PUT", "/v1/me/library", tokens["access_token"], params={"uris": ALBUM_URI})

    assert follow.status_code == 503 and follow.json()["error"]["status"] == 503
    assert save.status_code == 200
    assert [w["uri"] for w in sb.writes("alice")] == [ALBUM_URI]
    bad = requests.post(f"{sb.url}/_sandbox/faults", json={"errors_matching": 3}, timeout=5)
    assert bad.status_code == 400 and "errors_matching must be a text" in bad.json()["error"]


def test_errors_matching_after_lets_that_many_through_before_the_endpoint_goes_down(sb):
    tokens = tokens_for(sb)
    sb.faults(errors_matching="spotify:album:", errors_matching_after=2)

    saves = [api(sb, "PUT", "/v1/me/library", tokens["access_token"], params={"uris": ALBUM_URI}) for _ in range(3)]

    assert [save.status_code for save in saves] == [200, 200, 503]
    assert sb.control("GET", "faults")["errors_matching_after"] == 0, "counted down"
    bad = requests.post(f"{sb.url}/_sandbox/faults", json={"errors_matching_after": -1}, timeout=5)
    assert bad.status_code == 400 and "errors_matching_after must be a whole number" in bad.json()["error"]


def test_development_mode_refuses_the_api_to_users_not_registered_with_the_app(sb):
    sb.faults(registered_users=["bob"])
    alice, bob = tokens_for(sb, "alice"), tokens_for(sb, "bob")  # the sign-in itself works for anyone

    refused = api(sb, "GET", "/v1/me", alice["access_token"])

    assert refused.status_code == 403  # in plain text, as Spotify answers it (not its usual JSON error)
    assert (refused.headers["Content-Type"].split(";")[0], refused.text) == (
        "text/plain",
        "User not registered in the Developer Dashboard",
    )
    assert api(sb, "GET", "/v1/me", bob["access_token"]).status_code == 200
    assert refresh(sb, alice["refresh_token"]).status_code == 200, "the Accounts service is not the Web API"
    sb.faults(development_mode=False)  # an app with extended quota serves everyone
    assert api(sb, "GET", "/v1/me", alice["access_token"]).status_code == 200
    bad = requests.post(f"{sb.url}/_sandbox/faults", json={"registered_users": "bob"}, timeout=5)
    assert bad.status_code == 400 and "registered_users must be a list" in bad.json()["error"]


def test_an_app_whose_owner_lost_premium_is_refused_every_web_api_call_in_plain_text(sb):
    alice = tokens_for(sb, "alice")
    app = requests.post(
        f"{sb.accounts_url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT, timeout=5
    ).json()["access_token"]
    sb.faults(owner_premium_lapsed=True)

    for token in (alice["access_token"], app):
        refused = api(sb, "GET", f"/v1/albums/{NOVA_LARK_ALBUM_ID}", token)
        assert refused.status_code == 403 and refused.headers["Content-Type"].startswith("text/plain")
        assert refused.text.startswith("Active premium subscription required for the owner of the app.")
    assert refresh(sb, alice["refresh_token"]).status_code == 200, "the Accounts service is not the Web API"
    sb.faults(owner_premium_lapsed=False)
    assert api(sb, "GET", "/v1/me", alice["access_token"]).status_code == 200


def test_seeded_faults_repeat_exactly(sb):
    token = tokens_for(sb)["access_token"]

    def run() -> list[int]:
        sb.faults(error_rate=0.5, seed=7)
        return [api(sb, "GET", "/v1/me", token).status_code for _ in range(12)]

    first, second = run(), run()

    assert first == second
    assert 200 in first and any(status >= 500 for status in first)


def test_latency_is_added_to_every_request(sb):
    token = tokens_for(sb)["access_token"]
    sb.faults(latency_ms=200)

    started = time.monotonic()
    response = api(sb, "GET", "/v1/me", token)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.2


def test_timeout_rate_makes_requests_hang_until_the_client_gives_up(sb):
    token = tokens_for(sb)["access_token"]
    sb.faults(timeout_rate=1, hang_seconds=2)

    with pytest.raises(requests.Timeout):
        requests.put(
            f"{sb.api_url}/v1/me/library",
            params={"uris": ALBUM_URI},
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.3,
        )

    assert sb.control("GET", "counters")["timeouts"] == 1
    assert sb.writes() == []  # a hung request does nothing


# --- Control API -----------------------------------------------------------------------------------------
def test_seeded_user_gets_tokens_without_the_login_page(sb):
    created = requests.post(
        f"{sb.url}/_sandbox/users",
        json={"id": "fan-0001", "display_name": "Fan One", "email": "one@fans.test", "country": "SE"},
        timeout=5,
    )
    assert created.status_code == 201

    tokens = sb.control("POST", "users/fan-0001/authorize", {"scope": "user-read-email"})

    me = api(sb, "GET", "/v1/me", tokens["access_token"]).json()
    assert (me["id"], me["email"]) == ("fan-0001", "one@fans.test")
    assert tokens["scope"] == "user-read-email"


def test_counters_count_the_connections_service_requests_came_on(sb):
    """A client that keeps its connections alive is told from one that opens a connection a call (bench_delivery
    prints the engine's connections beside the bare loop's); the control API's own requests are not counted."""
    token = tokens_for(sb)["access_token"]
    before = sb.control("GET", "counters")["connections"]

    with requests.Session() as session:  # keep-alive: three calls, one connection
        for _ in range(3):
            response = session.get(f"{sb.api_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
            assert response.status_code == 200
    assert api(sb, "GET", "/v1/me", token).status_code == 200  # a connection of its own

    counters = sb.control("GET", "counters")
    assert counters["connections"] - before == 2
    sb.control("POST", "reset")
    assert sb.control("GET", "counters")["connections"] == 0


def test_reset_brings_back_the_demo_world_with_faults_off(sb):
    sb.faults(error_rate=1, rate_limit=5, development_mode=False)
    tokens = tokens_for(sb)
    api(sb, "PUT", "/v1/me/library", tokens["access_token"], params={"uris": ALBUM_URI})

    sb.control("POST", "reset")

    faults = sb.control("GET", "faults")
    assert (faults["error_rate"], faults["rate_limit"], faults["development_mode"]) == (0, None, True)
    assert sb.writes() == []
    assert sb.control("GET", "counters")["requests"] == 0
    assert {user["id"] for user in sb.control("GET", "users")} == {"alice", "bob", "chloe"}
    assert api(sb, "GET", "/v1/me", tokens["access_token"]).status_code == 401


def test_control_api_refuses_unknown_fault_switches(sb):
    response = requests.post(f"{sb.url}/_sandbox/faults", json={"chaos": True}, timeout=5)

    assert response.status_code == 400
    assert "chaos" in response.json()["error"]


def test_overview_page_shows_users_and_what_they_saved(sb):
    token = tokens_for(sb)["access_token"]
    api(sb, "PUT", "/v1/me/library", token, params={"uris": ALBUM_URI})

    page = requests.get(f"{sb.url}/_sandbox/", timeout=5)

    assert page.status_code == 200
    assert "Glass Harbour (album)" in page.text
