"""The sandbox speaks Deezer: OAuth with offline_access, /user/me, favourites, and errors inside a 200."""

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from delivery.sandbox import demo_catalog
from delivery.sandbox.deezer import numeric_id
from tests.conftest import DEEZER_APP_ID, DEEZER_SECRET

ALBUM = numeric_id("album", demo_catalog.NOVA_LARK_ALBUM_ID)


@pytest.fixture
def deezer(sandbox_server):
    sandbox_server.control("POST", "reset")
    return sandbox_server


def add_late_album(sandbox) -> dict:
    """An album added to the catalog after the sandbox started (UPC 5012345678924, by The Paper Tides)."""
    body = {"name": "Late Addition", "upc": "5012345678924", "release_date": "2026-12-11"}
    return sandbox.control("POST", "catalog/albums", {**body, "artist_id": demo_catalog.PAPER_TIDES_ARTIST_ID})


def api(deezer, method: str, path: str, **params) -> requests.Response:
    return requests.request(method, f"{deezer.deezer_api_url}{path}", params=params, timeout=10)


def test_oauth_round_trip_gives_a_token_that_never_expires(deezer):
    redirect = "http://127.0.0.1:9/oauth/deezer/callback/"
    query = {"app_id": DEEZER_APP_ID, "redirect_uri": redirect, "perms": "basic_access,offline_access", "state": "s1"}
    page = requests.get(f"{deezer.deezer_connect_url}/oauth/auth.php", params=query, timeout=10)
    assert page.status_code == 200 and "Log in to Deezer (sandbox)" in page.text
    answer = requests.post(
        f"{deezer.url}/deezer/connect/oauth/decide",
        data={**query, "user": "alice", "decision": "agree"},
        allow_redirects=False,
        timeout=10,
    )
    back = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    assert back["state"] == "s1"
    exchange = {"app_id": DEEZER_APP_ID, "secret": DEEZER_SECRET, "code": back["code"], "output": "json"}
    tokens = requests.get(f"{deezer.deezer_connect_url}/oauth/access_token.php", params=exchange, timeout=10).json()
    assert tokens["expires"] == 0 and tokens["access_token"]

    again = requests.get(f"{deezer.deezer_connect_url}/oauth/access_token.php", params=exchange, timeout=10)
    assert again.status_code == 200 and again.json()["error"]["type"] == "OAuthException", "a code works once"

    me = api(deezer, "GET", "/user/me", access_token=tokens["access_token"]).json()
    assert me["id"] == numeric_id("user", "alice") and me["name"] == "Alice" and "email" not in me


def test_cancel_redirects_with_user_denied(deezer):
    query = {"app_id": DEEZER_APP_ID, "redirect_uri": "http://127.0.0.1:9/cb/", "perms": "basic_access", "state": "s"}
    answer = requests.post(
        f"{deezer.url}/deezer/connect/oauth/decide", data={**query, "decision": "cancel"}, allow_redirects=False
    )
    assert dict(parse_qsl(urlsplit(answer.headers["Location"]).query)) == {"error_reason": "user_denied", "state": "s"}


def test_unknown_app_is_an_error_page(deezer):
    page = requests.get(f"{deezer.deezer_connect_url}/oauth/auth.php", params={"app_id": "1"}, timeout=10)
    assert page.status_code == 400 and "Wrong app_id" in page.text


def test_album_by_upc_and_favourite_it(deezer):
    album = api(deezer, "GET", f"/album/upc:{demo_catalog.NOVA_LARK_ALBUM_UPC}").json()
    assert album["id"] == ALBUM and album["artist"]["id"] == numeric_id("artist", demo_catalog.NOVA_LARK_ARTIST_ID)
    token = deezer.authorize_deezer("alice")

    assert api(deezer, "POST", "/user/me/albums", album_id=ALBUM, access_token=token).json() is True
    assert api(deezer, "POST", "/user/me/artists", artist_id=album["artist"]["id"], access_token=token).json() is True

    assert deezer.library("alice") == {
        "saved": [f"deezer:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"],
        "following": [f"deezer:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"],
    }
    listed = api(deezer, "GET", "/user/me/albums", access_token=token).json()
    assert [item["id"] for item in listed["data"]] == [ALBUM]


def test_errors_come_inside_a_200(deezer):
    token = deezer.authorize_deezer("alice", perms="basic_access,offline_access")
    cases = [
        (api(deezer, "GET", "/album/upc:000000000000"), "DataException", 800),
        (api(deezer, "POST", "/user/me/albums", album_id=ALBUM, access_token="nope"), "OAuthException", 300),
        (api(deezer, "POST", "/user/me/albums", album_id=ALBUM, access_token=token), "OAuthException", 200),
        (api(deezer, "POST", "/user/me/albums", album_id=1, access_token=token), "OAuthException", 200),
    ]
    for response, kind, code in cases:
        assert response.status_code == 200
        assert response.json()["error"]["type"] == kind and response.json()["error"]["code"] == code


def test_revoked_user_token_is_invalid(deezer):
    token = deezer.authorize_deezer("bob")
    deezer.control("POST", "users/bob/revoke")
    error = api(deezer, "GET", "/user/me", access_token=token).json()["error"]
    assert error == {"type": "OAuthException", "message": "Invalid OAuth access token.", "code": 300}


def test_spotify_refuses_a_deezer_token(deezer):
    token = deezer.authorize_deezer("alice")
    response = requests.get(f"{deezer.api_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401


def test_quota_is_code_4_in_a_200_and_server_faults_keep_their_status(deezer):
    token = deezer.authorize_deezer("alice")
    deezer.control("POST", "faults", {"rate_limit": 1})
    assert "error" not in api(deezer, "GET", "/user/me", access_token=token).json()
    limited = api(deezer, "GET", "/user/me", access_token=token)
    assert limited.status_code == 200 and limited.json()["error"]["code"] == 4

    deezer.control("POST", "faults", {"rate_limit": None, "error_rate": 1.0})
    failed = api(deezer, "GET", "/user/me", access_token=token)
    assert failed.status_code in (500, 502, 503) and failed.json()["error"]["code"] == 700


def test_quota_counts_calls_without_a_token_too(deezer):
    """Deezer's quota (50 requests in 5 seconds) counts the app's public catalog lookups as well."""
    deezer.control("POST", "faults", {"rate_limit": 0})
    limited = api(deezer, "GET", f"/album/upc:{demo_catalog.NOVA_LARK_ALBUM_UPC}")
    assert limited.status_code == 200 and limited.json()["error"]["code"] == 4


def test_catalog_added_later_is_found_by_deezer_id_upc_isrc_and_unknown_paths_say_no_data(deezer):
    """Deezer ids are kept in an index as the catalog grows (no scan per request)."""
    album = add_late_album(deezer)
    track = deezer.control(
        "POST", "catalog/tracks", {"name": "Late Song", "isrc": "GBSBX2600099", "album_id": album["id"]}
    )
    album_id, track_id = numeric_id("album", album["id"]), numeric_id("track", track["id"])

    assert api(deezer, "GET", f"/album/{album_id}").json()["upc"] == "5012345678924"
    assert api(deezer, "GET", "/album/upc:5012345678924").json()["id"] == album_id
    by_isrc = api(deezer, "GET", "/track/isrc:gbsbx2600099").json()
    assert by_isrc["id"] == track_id
    assert by_isrc["artist"]["id"] == numeric_id("artist", demo_catalog.PAPER_TIDES_ARTIST_ID)
    assert api(deezer, "GET", f"/track/{track_id}").json()["isrc"] == "GBSBX2600099"
    no_data = {"error": {"type": "DataException", "message": "no data", "code": 800}}
    for path in (f"/album/{track_id}", "/album/isrc:GBSBX2600099", "/track/upc:5012345678924", "/no/such/path"):
        answer = api(deezer, "GET", path)
        assert (answer.status_code, answer.json()) == (200, no_data), path

    token = deezer.authorize_deezer("alice")
    assert api(deezer, "POST", "/user/me/tracks", track_id=track_id, access_token=token).json() is True
    assert deezer.library("alice")["saved"] == [f"deezer:track:{track['id']}"]
