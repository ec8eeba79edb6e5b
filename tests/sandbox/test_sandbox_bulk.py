"""The sandbox's bulk seeding route: many users authorized in one control call (for bench_delivery)."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.conftest import CLIENT, refresh


def bulk_authorize(sb, body: dict) -> requests.Response:
    return requests.post(f"{sb.url}/_sandbox/users/bulk-authorize", json=body, timeout=10)


def test_bulk_authorize_creates_users_whose_tokens_refresh(sb):
    response = bulk_authorize(
        sb, {"ids": ["fan-1", "fan-2", "alice"], "client_id": CLIENT[0], "scope": "user-library-modify"}
    )

    assert response.status_code == 200
    tokens = response.json()
    assert sorted(tokens) == ["alice", "fan-1", "fan-2"]
    users = {user["id"]: user for user in sb.control("GET", "users")}
    assert users["fan-1"]["country"] == "GB"
    assert users["alice"]["display_name"] == "Alice"  # an existing user is kept, not replaced
    for user_id, minted in tokens.items():
        answer = refresh(sb, minted["refresh_token"])
        assert answer.status_code == 200, user_id
        assert answer.json()["scope"] == "user-library-modify"


def test_bulk_authorize_sets_the_country_of_new_users(sb):
    bulk_authorize(sb, {"ids": ["fan-de"], "country": "DE"}).raise_for_status()
    users = {user["id"]: user for user in sb.control("GET", "users")}
    assert users["fan-de"]["country"] == "DE"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"ids": "fan-1"}, "ids must be a list of user ids"),
        ({"ids": ["fan-1", ""]}, "ids must be a list of user ids"),
        ({"ids": ["fan-1"], "client_id": "nope"}, "Unknown client_id: nope"),
        ({"ids": ["fan-1"], "scope": "user-library-modify fly"}, "Unknown scopes: fly"),
        ({"ids": ["fan-1"], "country": "uk"}, "country must be an ISO 3166-1 alpha-2 code such as GB"),
    ],
)
def test_bulk_authorize_refuses_bad_requests_and_creates_nobody(sb, body, message):
    response = bulk_authorize(sb, body)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert "fan-1" not in {user["id"] for user in sb.control("GET", "users")}
