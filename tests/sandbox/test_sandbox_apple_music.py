"""The sandbox speaks Apple Music: developer tokens checked (ES256 signature, kid, iss, iat, exp), the
Music-User-Token for personal endpoints, catalog by UPC/ISRC per storefront, library adds, MusicKit JS."""

import time

import jwt
import pytest
import requests

from delivery.sandbox import demo_catalog
from delivery.sandbox.apple_music import catalog_id
from tests.conftest import MUSICKIT_KEY_ID, MUSICKIT_PRIVATE_KEY, MUSICKIT_TEAM_ID, _musickit_key
from tests.sandbox.test_sandbox_deezer import add_late_album

ALBUM = catalog_id("album", demo_catalog.NOVA_LARK_ALBUM_ID)


@pytest.fixture
def apple(sandbox_server):
    sandbox_server.control("POST", "reset")
    return sandbox_server


def developer_token(*, key=MUSICKIT_PRIVATE_KEY, kid=MUSICKIT_KEY_ID, iss=MUSICKIT_TEAM_ID, iat=None, exp=None):
    iat = int(time.time()) if iat is None else iat
    return jwt.encode({"iss": iss, "iat": iat, "exp": exp or iat + 3600}, key, algorithm="ES256", headers={"kid": kid})


def get(apple, path, token=None, user_token=None, **params):
    headers = {"Authorization": f"Bearer {token or developer_token()}"}
    if user_token:
        headers["Music-User-Token"] = user_token
    return requests.get(f"{apple.apple_music_api_url}{path}", params=params, headers=headers, timeout=10)


def test_album_by_upc_and_song_by_isrc_per_storefront(apple):
    albums = get(apple, "/v1/catalog/gb/albums", **{"filter[upc]": demo_catalog.NOVA_LARK_ALBUM_UPC}).json()
    assert [a["id"] for a in albums["data"]] == [ALBUM]
    assert albums["data"][0]["attributes"]["upc"] == demo_catalog.NOVA_LARK_ALBUM_UPC
    songs = get(apple, "/v1/catalog/us/songs", **{"filter[isrc]": demo_catalog.NOVA_LARK_TRACK_1_ISRC}).json()
    assert songs["data"][0]["attributes"]["isrc"] == demo_catalog.NOVA_LARK_TRACK_1_ISRC

    assert get(apple, f"/v1/catalog/gb/albums/{ALBUM}").status_code == 200
    apple.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["US"]})
    missing = get(apple, f"/v1/catalog/gb/albums/{ALBUM}")
    assert missing.status_code == 404 and missing.json()["errors"][0]["status"] == "404"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: developer_token(kid="OTHERKEY"), id="unknown kid"),
        pytest.param(lambda: developer_token(iss="OTHERTEAM"), id="wrong iss"),
        pytest.param(lambda: developer_token(key=_musickit_key()[0]), id="signed by another key"),
        pytest.param(lambda: developer_token(iat=int(time.time()) - 7200), id="expired"),
        pytest.param(lambda: developer_token(exp=int(time.time()) + 15_777_001), id="beyond six months"),
        pytest.param(lambda: "not-a-jwt", id="malformed"),
    ],
)
def test_developer_token_is_checked(apple, token):
    response = get(apple, "/v1/catalog/gb/albums", token=token(), **{"filter[upc]": "5012345678900"})
    assert response.status_code == 401 and response.json()["errors"][0]["code"] == "40100"


def test_library_add_answers_202_and_the_relationship_shows_it(apple):
    user_token = apple.authorize_apple_music("alice")
    assert get(apple, "/v1/me/storefront", user_token=user_token).json()["data"][0]["id"] == "gb"
    assert get(apple, f"/v1/catalog/gb/albums/{ALBUM}/library", user_token=user_token).json()["data"] == []

    added = requests.post(
        f"{apple.apple_music_api_url}/v1/me/library",
        params={"ids[albums]": f"{ALBUM},999"},
        headers={"Authorization": f"Bearer {developer_token()}", "Music-User-Token": user_token},
        timeout=10,
    )
    assert added.status_code == 202 and added.content == b"", "unknown ids are silently ignored"
    assert apple.library("alice")["saved"] == [f"apple_music:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"]
    [library_album] = get(apple, f"/v1/catalog/gb/albums/{ALBUM}/library", user_token=user_token).json()["data"]
    assert library_album["type"] == "library-albums" and library_album["id"].startswith("l.")


def test_an_album_not_in_the_fans_storefront_is_silently_not_added(apple):
    """Apple adds what the fan's own storefront has: other ids are ignored, with the same 202."""
    apple.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["US"]})
    user_token = apple.authorize_apple_music("alice")  # storefront gb
    added = requests.post(
        f"{apple.apple_music_api_url}/v1/me/library",
        params={"ids[albums]": ALBUM},
        headers={"Authorization": f"Bearer {developer_token()}", "Music-User-Token": user_token},
        timeout=10,
    )
    assert added.status_code == 202 and added.content == b""
    assert apple.library("alice")["saved"] == []
    assert get(apple, f"/v1/catalog/us/albums/{ALBUM}/library", user_token=user_token).json()["data"] == []


def test_music_user_token_is_required_and_dies_on_revoke(apple):
    assert get(apple, "/v1/me/storefront").status_code == 403
    user_token = apple.authorize_apple_music("bob")
    apple.control("POST", "users/bob/revoke")
    refused = get(apple, "/v1/me/storefront", user_token=user_token)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "40300"


def test_a_music_user_token_apple_no_longer_honours_answers_401_by_a_fault_switch(apple):
    """Apple's other answer to a Music-User-Token it no longer honours; the developer token is still accepted."""
    bob, alice = apple.authorize_apple_music("bob"), apple.authorize_apple_music("alice")
    apple.control("POST", "faults", {"apple_unauthorized_users": ["bob"]})
    refused = get(apple, "/v1/me/storefront", user_token=bob)
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "40100"
    assert get(apple, "/v1/me/storefront", user_token=alice).status_code == 200
    storefront = get(apple, "/v1/storefronts/us").json()["data"][0]
    assert storefront["id"] == "us" and storefront["type"] == "storefronts"
    assert get(apple, "/v1/storefronts/us", token=developer_token(iss="OTHERTEAM")).status_code == 401

    bad = requests.post(f"{apple.url}/_sandbox/faults", json={"apple_unauthorized_users": "bob"}, timeout=5)
    assert bad.status_code == 400 and "apple_unauthorized_users must be a list" in bad.json()["error"]


def test_ignoring_library_adds_is_a_fault_switch(apple):
    user_token = apple.authorize_apple_music("alice")
    apple.control("POST", "faults", {"apple_ignores_library_adds": True})
    added = requests.post(
        f"{apple.apple_music_api_url}/v1/me/library",
        params={"ids[albums]": ALBUM},
        headers={"Authorization": f"Bearer {developer_token()}", "Music-User-Token": user_token},
        timeout=10,
    )
    assert added.status_code == 202 and apple.library("alice")["saved"] == []


def test_musickit_stand_in_is_served_and_its_sign_in_answers_a_user_token(apple):
    script = requests.get(apple.musickit_js_url, timeout=10)
    assert script.status_code == 200 and "MusicKit" in script.text
    assert script.headers["Content-Type"].startswith("application/javascript")

    answer = requests.post(
        f"{apple.url}/apple_music/musickit/authorize",
        data=f'{{"developerToken": "{developer_token()}", "user": "Dana Fox"}}',
        headers={"Content-Type": "text/plain", "Origin": "http://127.0.0.1:8000"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    user_token = answer.json()["musicUserToken"]
    assert get(apple, "/v1/me/storefront", user_token=user_token).status_code == 200
    assert "dana-fox" in [user["id"] for user in apple.control("GET", "users")]

    refused = requests.post(
        f"{apple.url}/apple_music/musickit/authorize", data='{"developerToken": "x", "user": "a"}', timeout=10
    )
    assert refused.status_code == 401


def test_faults_apply_to_apple_music(apple):
    apple.control("POST", "faults", {"error_rate": 1.0})
    assert get(apple, "/v1/catalog/gb/albums", **{"filter[upc]": "5012345678900"}).status_code in (500, 502, 503)
    apple.control("POST", "faults", {"error_rate": 0.0, "rate_limit": 0})
    limited = get(apple, "/v1/catalog/gb/albums", **{"filter[upc]": "5012345678900"})
    assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_overview_page_names_every_services_saves(apple):
    user_token = apple.authorize_apple_music("alice")
    song = catalog_id("song", demo_catalog.NOVA_LARK_TRACK_1_ID)
    requests.post(
        f"{apple.apple_music_api_url}/v1/me/library",
        params={"ids[songs]": song},
        headers={"Authorization": f"Bearer {developer_token()}", "Music-User-Token": user_token},
        timeout=10,
    )
    page = requests.get(f"{apple.url}/_sandbox/", timeout=10)
    assert page.status_code == 200 and "Glass Harbour (song, apple_music)" in page.text


def test_catalog_added_later_is_found_by_apple_id_and_upc_and_unknown_paths_answer_apples_errors(apple):
    """Apple catalog ids are kept in an index as the catalog grows (no scan per request)."""
    album = add_late_album(apple)
    apple_id = catalog_id("album", album["id"])

    by_upc = get(apple, "/v1/catalog/gb/albums", **{"filter[upc]": "5012345678924"}).json()
    assert [item["id"] for item in by_upc["data"]] == [apple_id]
    assert get(apple, f"/v1/catalog/gb/albums/{apple_id}").json()["data"][0]["attributes"]["name"] == "Late Addition"
    assert get(apple, f"/v1/catalog/gb/songs/{apple_id}").status_code == 404, "an album's id is no song's"

    unknown = get(apple, "/v1/no/such/path")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["title"] == "Resource Not Found"
    wrong_method = requests.delete(
        f"{apple.apple_music_api_url}/v1/me/library", headers={"Authorization": f"Bearer {developer_token()}"}
    )
    assert wrong_method.status_code == 405 and wrong_method.json()["errors"][0]["status"] == "405"
