"""The Spotify sandbox's playlists over real HTTP, as developer.spotify.com documents them since February 2026:
POST /v1/me/playlists, GET /v1/me/playlists, POST /v1/playlists/{id}/items, and GET /v1/albums/{id}/tracks."""

from __future__ import annotations

import requests

from delivery.sandbox.demo_catalog import NOVA_LARK_ALBUM_ID, NOVA_LARK_TRACK_1_ID, NOVA_LARK_TRACK_2_ID
from tests.sandbox.conftest import CLIENT
from tests.sandbox.test_sandbox_spotify import api, tokens_for

TRACKS = [f"spotify:track:{NOVA_LARK_TRACK_1_ID}", f"spotify:track:{NOVA_LARK_TRACK_2_ID}"]
PRIVATE = "playlist-modify-private"
INSUFFICIENT_SCOPE = {"error": {"status": 403, "message": "Insufficient client scope"}}


def make_playlist(sb, token: str, name: str = "Glass Harbour — Pre-saves", **fields) -> requests.Response:
    return api(sb, "POST", "/v1/me/playlists", token, json={"name": name, "public": False, **fields})


def test_a_private_playlist_is_made_then_filled_by_its_owner(sb):
    token = tokens_for(sb, scope=PRIVATE)["access_token"]

    created = make_playlist(sb, token, description="First Light")
    assert created.status_code == 201, created.text
    playlist = created.json()
    assert (playlist["name"], playlist["public"], playlist["owner"]["id"]) == (
        "Glass Harbour — Pre-saves",
        False,
        "alice",
    )
    assert playlist["uri"] == f"spotify:playlist:{playlist['id']}" and playlist["items"]["total"] == 0

    added = api(sb, "POST", f"/v1/playlists/{playlist['id']}/items", token, json={"uris": TRACKS})

    assert added.status_code == 201, added.text
    assert added.json()["snapshot_id"] != playlist["snapshot_id"]
    assert sb.playlists("alice") == [
        {
            "id": playlist["id"],
            "name": "Glass Harbour — Pre-saves",
            "public": False,
            "collaborative": False,
            "description": "First Light",
            "items": TRACKS,
        }
    ]
    assert [w["endpoint"] for w in sb.writes("alice")] == ["POST /v1/me/playlists"] + [
        "POST /v1/playlists/{id}/items"
    ] * 2


def test_playlists_need_the_modify_scope_of_their_kind(sb):
    library_only = tokens_for(sb, scope="user-library-modify")["access_token"]
    public_only = tokens_for(sb, scope="playlist-modify-public")["access_token"]
    private = tokens_for(sb, scope=PRIVATE)["access_token"]
    playlist_id = make_playlist(sb, private).json()["id"]

    assert make_playlist(sb, library_only).json() == INSUFFICIENT_SCOPE
    assert make_playlist(sb, public_only).status_code == 403, "a private playlist needs playlist-modify-private"
    assert make_playlist(sb, public_only, public=True).status_code == 201
    refused = api(sb, "POST", f"/v1/playlists/{playlist_id}/items", library_only, json={"uris": TRACKS})
    assert (refused.status_code, refused.json()) == (403, INSUFFICIENT_SCOPE)
    assert sb.playlists("alice")[0]["items"] == []


def test_only_the_owner_adds_and_bad_requests_add_nothing(sb):
    alice = tokens_for(sb, scope=PRIVATE)["access_token"]
    bob = tokens_for(sb, "bob", scope=PRIVATE)["access_token"]
    playlist_id = make_playlist(sb, alice).json()["id"]
    items = f"/v1/playlists/{playlist_id}/items"

    not_owner = api(sb, "POST", items, bob, json={"uris": TRACKS})
    too_many = api(sb, "POST", items, alice, json={"uris": TRACKS * 51})
    unknown = api(sb, "POST", items, alice, json={"uris": ["spotify:track:" + "Z" * 22]})
    not_json = api(sb, "POST", items, alice, data="uris")
    no_playlist = api(sb, "POST", f"/v1/playlists/{'Z' * 22}/items", alice, json={"uris": TRACKS})

    assert not_owner.status_code == 403 and not_owner.json()["error"]["message"] == (
        "You cannot add tracks to a playlist you don't own."
    )
    assert too_many.status_code == unknown.status_code == not_json.status_code == 400
    assert no_playlist.json() == {"error": {"status": 404, "message": "Resource not found"}}
    assert sb.playlists("alice")[0]["items"] == []
    assert make_playlist(sb, alice, name="").status_code == 400
    assert make_playlist(sb, alice, name="x" * 101).status_code == 400
    assert api(sb, "POST", "/v1/me/playlists", alice, data="{").json()["error"]["message"] == "Error parsing json"


def test_listing_shows_private_playlists_only_with_playlist_read_private(sb):
    """Why release day keeps the playlist's id instead of looking for it: listing it needs another scope."""
    modify = tokens_for(sb, scope=PRIVATE)["access_token"]
    read = tokens_for(sb, scope=f"{PRIVATE} playlist-read-private")["access_token"]
    first = make_playlist(sb, modify, name="First").json()["id"]
    second = make_playlist(sb, modify, name="Second").json()["id"]

    hidden = api(sb, "GET", "/v1/me/playlists", modify, params={"limit": 50})
    shown = api(sb, "GET", "/v1/me/playlists", read, params={"limit": 1})

    assert hidden.status_code == 200 and hidden.json()["items"] == []
    page = shown.json()
    assert ([p["id"] for p in page["items"]], page["total"]) == ([second], 2), "newest first"
    assert page["next"].endswith("/me/playlists?offset=1&limit=1")
    assert api(sb, "GET", "/v1/me/playlists", read, params={"offset": 1}).json()["items"][0]["id"] == first
    assert api(sb, "GET", "/v1/me/playlists", read, params={"limit": 51}).status_code == 400


def test_an_albums_tracks_are_read_page_by_page_with_the_apps_token(sb):
    app = requests.post(
        f"{sb.accounts_url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT, timeout=5
    ).json()["access_token"]

    first = api(sb, "GET", f"/v1/albums/{NOVA_LARK_ALBUM_ID}/tracks", app, params={"limit": 1}).json()
    second = api(sb, "GET", f"/v1/albums/{NOVA_LARK_ALBUM_ID}/tracks", app, params={"limit": 1, "offset": 1}).json()

    assert [t["uri"] for t in first["items"] + second["items"]] == TRACKS
    assert (first["total"], second["next"]) == (2, None) and first["next"]
    assert api(sb, "GET", f"/v1/albums/{'Z' * 22}/tracks", app).status_code == 404


def test_faults_reach_the_playlist_endpoints_too(sb):
    token = tokens_for(sb, scope=PRIVATE)["access_token"]
    playlist_id = make_playlist(sb, token).json()["id"]
    sb.faults(errors_matching="/items")

    down = api(sb, "POST", f"/v1/playlists/{playlist_id}/items", token, json={"uris": TRACKS})
    sb.faults(errors_matching="", rate_limit=0)
    limited = make_playlist(sb, token)

    assert down.json() == {"error": {"status": 503, "message": "Service unavailable"}}
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert sb.playlists("alice")[0]["items"] == [] and len(sb.playlists("alice")) == 1

    sb.faults(rate_limit=None)
    sb.control("POST", "users/alice/revoke")
    assert make_playlist(sb, token).status_code == 401, "a revoked user's token no longer works"


def test_the_overview_page_shows_each_users_playlists(sb):
    token = tokens_for(sb, scope=PRIVATE)["access_token"]
    playlist_id = make_playlist(sb, token).json()["id"]
    api(sb, "POST", f"/v1/playlists/{playlist_id}/items", token, json={"uris": TRACKS})

    page = requests.get(f"{sb.url}/_sandbox/", timeout=5)

    assert "Glass Harbour — Pre-saves (2 tracks)" in page.text
