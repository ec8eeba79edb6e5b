"""The sandbox server itself, over real HTTP: what it answers outside the services' routes."""

from __future__ import annotations

import requests


def test_favicon_ico_is_a_204_not_a_404(sb):
    """Browsers on the sandbox's login pages ask for /favicon.ico: no icon, and no 404 noise in the log."""
    sb.faults(error_rate=1.0)  # not a service's route: no fault applies

    for method in ("GET", "HEAD"):
        response = requests.request(method, f"{sb.url}/favicon.ico", timeout=5)
        assert (response.status_code, response.content) == (204, b"")

    assert requests.get(f"{sb.url}/favicon.png", timeout=5).status_code == 404, "only that one address"
