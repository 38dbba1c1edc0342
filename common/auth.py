"""Token authentication for the Worker and Hub APIs: token groups, 401/403, constant time.

Each handler declares the token group it belongs to with `@token_group("submit")`; the
middleware reads it from the matched route. The rule, one for every route:

- A service with no token configured at all is open (the Authorization header is ignored);
  it refuses to start on a non-loopback address unless `SCANHUB_ALLOW_OPEN=true`.
- Once any token is configured, every route requires one, except `/health` (probes) and the
  bearer-token endpoint (`PUBLIC`). The `submit` or `tasks` group with no tokens of its own
  accepts the admin tokens, or, with no admin tokens either, any configured token. The
  `admin` group accepts only admin tokens: with none configured its routes answer 403, so
  handing out a submit token never grants administration. Routes that declare no group
  (`/metrics`, `/openapi.json`) accept any configured token.

Beside the static `Authorization: Token <x>`, short-lived OAuth2 bearer tokens are accepted
wherever a static token is (api-conventions): a client exchanges a static token for a
5-minute JWT at `POST /api/auth/v1/token` (client-credentials grant, the static token as
client_secret) and sends `Authorization: Bearer <jwt>`. The JWT carries the token groups
its static token belongs to.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jwt
from aiohttp import web

from common.errors import ApiError, Handler, json_response

BEARER_LIFETIME_SECONDS = 300
TOKEN_PATH = "/api/auth/v1/token"

GROUP_ATTRIBUTE = "_scanhub_token_group"
# Routes anyone may call whatever the tokens: health probes and the bearer-token endpoint.
PUBLIC = "public"
# The group of routes that declare none: any configured token is accepted.
ANY = "any"
ADMIN = "admin"
F = TypeVar("F", bound=Callable[..., object])


def token_group(name: str) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, GROUP_ATTRIBUTE, name)
        return handler

    return mark


def split_authorization(authorization: str | None) -> tuple[str, str] | None:
    """(scheme, credentials) from an Authorization header; None when it is absent."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return scheme.lower(), value.strip()


def token_is_valid(token: str, allowed: Sequence[str]) -> bool:
    """Compare against every allowed token in constant time, without stopping at a match."""
    matched = False
    candidate = token.encode()
    for allowed_token in allowed:
        matched |= hmac.compare_digest(candidate, allowed_token.encode())
    return matched


class Authenticator:
    """Checks static and bearer tokens for the token groups, and issues bearer tokens."""

    def __init__(self, groups: Mapping[str, Sequence[str]], bearer_secret: str | None = None):
        own = {name: list(tokens) for name, tokens in groups.items()}
        everyone = list(dict.fromkeys(token for tokens in own.values() for token in tokens))
        # No token anywhere: open. Otherwise a group without tokens falls back (see above).
        self.open = not everyone
        fallback = own.get(ADMIN) or everyone
        self.groups = {name: tokens or fallback for name, tokens in own.items() if name != ADMIN}
        self.groups[ADMIN] = own.get(ADMIN, [])
        self.groups[ANY] = everyone
        # Without a configured secret, bearer tokens are valid only at the process that
        # issued them; set one shared secret when several processes serve one address.
        self.bearer_secret = bearer_secret or secrets.token_urlsafe(32)

    def check(self, authorization: str | None, group: str) -> None:
        if self.open or group == PUBLIC:
            return
        allowed = self.groups.get(group, self.groups[ANY])
        if not allowed:
            variable = f"SCANHUB_{group.upper()}_TOKENS"
            raise ApiError(403, f"no {group} token is configured on this service: set {variable}")
        presented = split_authorization(authorization)
        if presented is None:
            raise ApiError(401, "authorization required: send 'Authorization: Token <token>'")
        scheme, credentials = presented
        if scheme == "token" and token_is_valid(credentials, allowed):
            return
        if scheme == "bearer":
            scope = self.bearer_scope(credentials)
            if group in scope or (group == ANY and scope):
                return
        raise ApiError(403, "the authorization token is not valid")

    def bearer_scope(self, bearer: str) -> list[str]:
        try:
            claims = jwt.decode(
                bearer, self.bearer_secret, algorithms=["HS256"], options={"require": ["exp", "iat"]}
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "the bearer token has expired; request a new one") from None
        except jwt.InvalidTokenError:
            return []
        return [str(group) for group in claims.get("scope", "").split()]

    def groups_of(self, static_token: str) -> list[str]:
        return [
            name for name, tokens in self.groups.items() if tokens and token_is_valid(static_token, tokens)
        ]

    def issue(self, client_id: str, client_secret: str) -> dict[str, Any]:
        scope = [group for group in self.groups_of(client_secret) if group != ANY]
        if not scope:
            raise ApiError(401, "invalid_client: the client secret is not a valid token")
        now = int(time.time())
        claims = {
            "sub": client_id,
            "scope": " ".join(scope),
            "iat": now,
            "exp": now + BEARER_LIFETIME_SECONDS,
        }
        return {
            "access_token": jwt.encode(claims, self.bearer_secret, algorithm="HS256"),
            "token_type": "Bearer",
            "expires_in": BEARER_LIFETIME_SECONDS,
            "scope": claims["scope"],
        }


def client_credentials(request: web.Request, form: Mapping[str, Any]) -> tuple[str, str]:
    """client_id and client_secret from HTTP Basic auth or from the form (RFC 6749 §2.3.1)."""
    presented = split_authorization(request.headers.get("Authorization"))
    if presented and presented[0] == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(presented[1]).decode().partition(":")
        except ValueError:
            raise ApiError(400, "malformed Basic credentials") from None
        return client_id, client_secret
    return str(form.get("client_id", "")), str(form.get("client_secret", ""))


def token_endpoint(authenticator: Authenticator) -> web.RouteDef:
    async def issue_token(request: web.Request) -> web.Response:
        form = await request.post() if request.content_length and request.content_length < 8192 else {}
        if form.get("grant_type") != "client_credentials":
            raise ApiError(400, "unsupported_grant_type: only grant_type=client_credentials is supported")
        client_id, client_secret = client_credentials(request, form)
        return json_response(
            authenticator.issue(client_id, client_secret), headers={"Cache-Control": "no-store"}
        )

    return web.post(TOKEN_PATH, token_group(PUBLIC)(issue_token))


def auth_middleware(authenticator: Authenticator):
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        group = getattr(request.match_info.handler, GROUP_ATTRIBUTE, ANY)
        authenticator.check(request.headers.get("Authorization"), group)
        return await handler(request)

    return authenticate
