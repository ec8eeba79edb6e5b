"""Spotify's Accounts service: the authorize page and its form, the token endpoint, and their errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from delivery.sandbox import login_page
from delivery.sandbox.service_app import ServiceApiError
from delivery.sandbox.state import (
    ACCESS_TOKEN_SECONDS,
    AUTHORIZATION_LIFETIME_SECONDS,
    AccessToken,
    Client,
    SandboxState,
)

# developer.spotify.com/documentation/web-api/concepts/scopes, in the words a user reads when asked.
SCOPES = {
    "ugc-image-upload": "Upload images to your playlists",
    "user-read-playback-state": "Read what you are playing and your Spotify Connect devices",
    "user-modify-playback-state": "Control playback on your Spotify clients and devices",
    "user-read-currently-playing": "Read what you are playing right now",
    "app-remote-control": "Control Spotify on your other devices",
    "streaming": "Play content and control playback",
    "playlist-read-private": "Access your private playlists",
    "playlist-read-collaborative": "Access your collaborative playlists",
    "playlist-modify-private": "Manage your private playlists",
    "playlist-modify-public": "Manage your public playlists",
    "user-follow-modify": "Manage who you are following",
    "user-follow-read": "See who you are following",
    "user-read-playback-position": "Read your position in content you have played",
    "user-top-read": "Read your top artists and content",
    "user-read-recently-played": "Access your recently played items",
    "user-library-modify": "Manage your saved content (albums, tracks, Your Library)",
    "user-library-read": "Access your saved content",
    "user-read-email": "Get your real email address",
    "user-read-private": "Access your subscription details and country",
}
AUTHORIZE_PARAMS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge_method",
    "code_challenge",
    "show_dialog",
)


class OAuthError(ServiceApiError):
    """An Accounts service error: `{"error", "error_description"}` (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self, request: web.Request) -> web.Response:
        return web.json_response({"error": self.error, "error_description": self.description}, status=self.status)


@dataclass(frozen=True)
class AuthorizeRequest:
    client: Client
    params: dict[str, str]  # the query parameters to carry through the login form
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None


class Accounts:
    """The Accounts service's handlers (https://accounts.spotify.com)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/accounts/authorize", self.authorize),
            web.post("/accounts/authorize/decide", self.decide),
            web.post("/accounts/api/token", self.token),
        ]

    # Accounts service: authorization

    async def authorize(self, request: web.Request) -> web.Response:
        """GET /authorize: the login and consent page.
        developer.spotify.com/documentation/web-api/tutorials/code-flow and .../code-pkce-flow"""
        return self._login_page(self._authorize_request(request.query))

    async def decide(self, request: web.Request) -> web.Response:
        """The login page's form: Agree redirects with a code, Cancel with error=access_denied."""
        form = await request.post()
        auth = self._authorize_request(form)
        if form.get("decision") != "agree":
            raise web.HTTPFound(_redirect(auth, error="access_denied"))
        user_id = login_page.chosen_user(self.state, str(form.get("user", "")), str(form.get("new_user", "")))
        if user_id is None:
            return self._login_page(auth, error="Choose a user, or type a name for a new one.", status=400)
        code = self.state.issue_code(auth.client.id, user_id, auth.redirect_uri, auth.scope, auth.code_challenge)
        raise web.HTTPFound(_redirect(auth, code=code.code))

    def _authorize_request(self, params: Mapping[str, object]) -> AuthorizeRequest:
        """Check /authorize parameters in Spotify's order: errors about the client or redirect URI are
        shown as a page; the others go back to the app's redirect URI."""
        values = {name: str(params[name]) for name in AUTHORIZE_PARAMS if name in params}
        client = self.state.clients.get(values.get("client_id", ""))
        if client is None:
            raise login_page.page_error("INVALID_CLIENT: Invalid client")
        redirect_uri = values.get("redirect_uri", "")
        if not client.accepts_redirect_uri(redirect_uri):
            raise login_page.page_error("INVALID_CLIENT: Invalid redirect URI")
        scope = " ".join(values.get("scope", "").split())
        auth = AuthorizeRequest(client, values, redirect_uri, values.get("state"), scope, values.get("code_challenge"))
        if values.get("response_type") != "code":
            raise web.HTTPFound(_redirect(auth, error="unsupported_response_type"))
        if any(name not in SCOPES for name in scope.split()):
            raise login_page.page_error("Illegal scope")
        method = values.get("code_challenge_method")
        if (method is not None or auth.code_challenge is not None) and (method != "S256" or not auth.code_challenge):
            raise web.HTTPFound(_redirect(auth, error="invalid_request"))
        return auth

    def _login_page(self, auth: AuthorizeRequest, *, error: str = "", status: int = 200) -> web.Response:
        html = login_page.login_page(
            client_name=auth.client.name,
            params=auth.params,
            scope_words=[SCOPES[name] for name in auth.scope.split()],
            users=list(self.state.users.values()),
            error=error,
        )
        return web.Response(text=html, content_type="text/html", status=status)

    # Accounts service: tokens

    async def token(self, request: web.Request) -> web.Response:
        """POST /api/token: authorization_code, refresh_token and client_credentials grants.
        developer.spotify.com/documentation/web-api/tutorials/code-flow, .../code-pkce-flow,
        .../refreshing-tokens, .../client-credentials-flow"""
        form = await request.post()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("unsupported_grant_type", "grant_type parameter is missing")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type must be client_credentials, authorization_code or refresh_token",
            )
        client, confidential = self._token_client(request, form)
        if grant_type == "authorization_code":
            return self._exchange_code(form, client, confidential)
        if grant_type == "refresh_token":
            return self._refresh(form, client, confidential)
        if not confidential:
            raise OAuthError("invalid_client", "Invalid client")
        token = self.state.issue_access_token(client.id)
        return web.json_response(
            {"access_token": token.token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}
        )

    def _token_client(self, request: web.Request, form: MultiDictProxy) -> tuple[Client, bool]:
        """The calling app, and whether it proved itself with its secret (Basic header or form fields).
        Without a secret it is a PKCE client that named itself with `client_id`."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            credentials = basic_credentials(header)
            if credentials is None:
                raise OAuthError("invalid_client", "Invalid client")
            client_id, secret = credentials
        else:
            client_id = str(form.get("client_id", ""))
            secret = str(form["client_secret"]) if "client_secret" in form else None
        client = self.state.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "Invalid client")
        if secret is None:
            return client, False
        if not hmac.compare_digest(secret.encode(), client.secret.encode()):
            raise OAuthError("invalid_client", "Invalid client secret")
        return client, True

    def _exchange_code(self, form: MultiDictProxy, client: Client, confidential: bool) -> web.Response:
        verifier = str(form["code_verifier"]) if "code_verifier" in form else None
        if not confidential and verifier is None:
            raise OAuthError("invalid_request", "code_verifier required")
        code = self.state.take_code(str(form.get("code", "")))
        if code is None or code.client_id != client.id:
            raise OAuthError("invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "Invalid redirect URI")
        if (code.code_challenge is not None or verifier is not None) and (
            verifier is None or code.code_challenge is None or _s256(verifier) != code.code_challenge
        ):
            raise OAuthError("invalid_grant", "code_verifier was incorrect")
        grant = self.state.authorize(code.user_id, client.id, code.scope, public=not confidential)
        token = self.state.issue_access_token(client.id, grant)
        return _token_response(token, grant.scope, grant.refresh_token)

    def _refresh(self, form: MultiDictProxy, client: Client, confidential: bool) -> web.Response:
        refresh_token = str(form.get("refresh_token", ""))
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token must be supplied")
        grant = self.state.refresh_tokens.get(refresh_token)
        if grant is None or grant.client_id != client.id:
            raise OAuthError("invalid_grant", "Invalid refresh token")
        if not confidential and not grant.public:
            raise OAuthError("invalid_client", "Invalid client")
        if grant.revoked:
            raise OAuthError("invalid_grant", "Refresh token revoked")
        if self.state.now() >= grant.authorized_at + AUTHORIZATION_LIFETIME_SECONDS:
            raise OAuthError("invalid_grant", "Refresh token expired")
        token = self.state.issue_access_token(client.id, grant)
        rotated = self.state.rotate_refresh_token(grant) if self.state.faults.rotate_refresh_tokens else None
        return _token_response(token, grant.scope, rotated)


def _token_response(token: AccessToken, scope: str, refresh_token: str | None) -> web.Response:
    body = {
        "access_token": token.token,
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": ACCESS_TOKEN_SECONDS,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return web.json_response(body)


def _redirect(auth: AuthorizeRequest, **params: str) -> URL:
    """The app's redirect URI with `params` and the app's `state` added to its query."""
    if auth.state is not None:
        params["state"] = auth.state
    return URL(auth.redirect_uri).update_query(params)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(client_id, client_secret) from an `Authorization: Basic …` header, or None when malformed."""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
