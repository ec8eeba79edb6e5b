"""A service's answer that redirects is an error, never followed, on either transport: the call's token would
otherwise go to whatever host the Location names."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from delivery.services import get_service
from delivery.services.base import Call, ServiceError, bearer
from delivery.transport import AsyncTransport


class Server:
    """A real HTTP server on a free port; `seen` keeps the Authorization header of each request it got."""

    def __init__(self, answer) -> None:
        self.seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.seen.append(self.headers.get("Authorization", ""))
                answer(self)

            do_POST = do_PUT = do_GET

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere():
    def ok(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(b'{"id": "stolen"}')

    server = Server(ok)
    yield server
    server.close()


@pytest.fixture
def redirecting(elsewhere, settings):
    def moved(handler):
        handler.send_response(302)
        handler.send_header("Location", f"{elsewhere.url}{handler.path}")
        handler.end_headers()

    server = Server(moved)
    settings.SPOTIFY_API_URL = server.url
    yield server
    server.close()


def test_a_redirect_on_a_one_off_call_is_an_error_and_the_token_stays_home(redirecting, elsewhere):
    with pytest.raises(ServiceError) as caught:
        get_service("spotify").profile("fan-secret-token")

    assert "redirected the request elsewhere (302)" in caught.value.message
    assert redirecting.seen == ["Bearer fan-secret-token"] and elsewhere.seen == []


def test_a_redirect_on_a_release_day_call_is_an_error_and_the_token_stays_home(redirecting, elsewhere):
    service = get_service("spotify")
    call = Call("save", "PUT", f"{redirecting.url}/v1/me/library", headers=bearer("fan-secret-token"))
    with AsyncTransport(concurrency=2, timeout=5) as transport, pytest.raises(ServiceError) as caught:
        transport.submit(transport.run(service, call))

    assert "redirected the request elsewhere (302)" in caught.value.message
    assert elsewhere.seen == []
