"""Token authentication for the Worker and Hub APIs: token groups, 401/403, constant time.

Each handler declares the token group it belongs to with `@token_group("submit")`; the
middleware reads it from the matched route. A group with no configured tokens is open:
the spec says the Authorization header is then ignored.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from aiohttp import web

from common.errors import ApiError, Handler

GROUP_ATTRIBUTE = "_scanhub_token_group"
F = TypeVar("F", bound=Callable[..., object])


def token_group(name: str) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, GROUP_ATTRIBUTE, name)
        return handler

    return mark


def presented_token(authorization: str | None) -> str | None:
    """The token from `Authorization: Token <x>`; None when the header is absent."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "token":
        return ""
    return value.strip()


def token_is_valid(token: str, allowed: Sequence[str]) -> bool:
    """Compare against every allowed token in constant time, without stopping at a match."""
    matched = False
    candidate = token.encode()
    for allowed_token in allowed:
        matched |= hmac.compare_digest(candidate, allowed_token.encode())
    return matched


def check_token(authorization: str | None, allowed: Sequence[str]) -> None:
    if not allowed:
        return
    token = presented_token(authorization)
    if token is None:
        raise ApiError(401, "authorization required: send 'Authorization: Token <token>'")
    if not token_is_valid(token, allowed):
        raise ApiError(403, "the authorization token is not valid")


def auth_middleware(groups: Mapping[str, Sequence[str]]):
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        group = getattr(route_handler, GROUP_ATTRIBUTE, None)
        if group is not None:
            check_token(request.headers.get("Authorization"), groups.get(group, ()))
        return await handler(request)

    return authenticate
