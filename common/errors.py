"""The JSON error type every handler raises and the middleware that renders it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import ClientPayloadError, web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client-facing error: an HTTP status, a message, and optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(value: object, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(
        body=orjson.dumps(value), status=status, headers=headers, content_type="application/json"
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    return json_response({"message": message}, status=status, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError and aiohttp's own HTTP errors as `{"message": ...}`; hide tracebacks."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.message, error.headers)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {k: v for k, v in error.headers.items() if k.lower() in {"allow", "retry-after"}}
        return error_response(error.status, error.reason, headers)
    except (ConnectionResetError, ClientPayloadError) as error:
        # The client went away mid-request: nothing to answer, and nothing went wrong here.
        log.info("%s %s: the client disconnected (%s)", request.method, request.path, type(error).__name__)
        return error_response(400, "the client disconnected before the request was complete")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")
