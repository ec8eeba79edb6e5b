"""What the Spotify sandbox tests share: the app's credentials, a sandbox reset for each test, a token refresh."""

from __future__ import annotations

import pytest
import requests

from delivery.sandbox.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

CLIENT = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)


@pytest.fixture
def sb(sandbox_server):
    """The shared sandbox, back in its demo world with faults off."""
    sandbox_server.control("POST", "reset")
    return sandbox_server


def refresh(sb, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{sb.accounts_url}/api/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=CLIENT,
        timeout=5,
    )
