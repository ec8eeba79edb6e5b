"""Talking to a running sandbox: the base URLs the app is pointed at, and the control API (/_sandbox/)."""

from __future__ import annotations

from typing import Any

import requests


class SandboxClient:
    def __init__(self, url: str = "", *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    @property
    def accounts_url(self) -> str:
        """What SPOTIFY_ACCOUNTS_URL is set to."""
        return f"{self.url}/spotify/accounts"

    @property
    def api_url(self) -> str:
        """What SPOTIFY_API_URL is set to."""
        return f"{self.url}/spotify/api"

    @property
    def deezer_connect_url(self) -> str:
        """What DEEZER_CONNECT_URL is set to."""
        return f"{self.url}/deezer/connect"

    @property
    def deezer_api_url(self) -> str:
        """What DEEZER_API_URL is set to."""
        return f"{self.url}/deezer/api"

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self.http.request(method, f"{self.url}/_sandbox/{path.lstrip('/')}", json=body, timeout=self.timeout)
        response.raise_for_status()
        return response.json() if response.content else {}
