"""The status page every service serves at `/`, and what lets a Hub's page read a Worker's task.

The page is one HTML file (`common/status_page.html`: markup, style and script together, no
build step). It reads the service's status as JSON (`/api/hub/v1/status` on a Hub,
`/api/worker/v1/status` on a Worker), redraws itself every few seconds, and has an upload
box that sends a file and follows its `task_url` until the verdict is in.

The page itself holds no data, so it needs no token. The JSON it reads is in the `tasks`
token group: on a service with tokens the page asks for one and keeps it in the browser's
session storage.

On a Hub, `task_url` points at a Worker: another origin for the browser. A Worker lets
the pages of the origins in its `SCANHUB_CORS_ORIGINS` read its tasks (GET and the preflight
of a GET with an `Authorization` header) and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from common.auth import PUBLIC, token_group
from common.errors import Handler

PAGE = Path(__file__).with_name("status_page.html")


def status_page_route(service: str) -> web.RouteDef:
    """`GET /`: the status page of a `hub` or a `worker`, read once per process."""
    body = PAGE.read_bytes().replace(b"SCANHUB_SERVICE", service.encode())

    @token_group(PUBLIC)
    async def status_page(request: web.Request) -> web.Response:
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Cache-Control": "no-cache",
                # The page runs only its own script and talks to this service and, through
                # CORS, to the Workers whose task_urls it follows.
                "Content-Security-Policy": (
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src *; img-src data:; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'"
                ),
                "X-Content-Type-Options": "nosniff",
            },
        )

    return web.get("/", status_page)


def cors_middleware(origins: list[str], path_prefix: str) -> Middleware:
    """Let pages of `origins` read (GET) the routes under `path_prefix`: the allowed origin is
    echoed in `Access-Control-Allow-Origin`, and a preflight `OPTIONS` is answered here,
    before authentication (a browser sends no credentials with it)."""
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or origin not in allowed or not request.path.startswith(path_prefix):
            return await handler(request)
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "GET"
            headers["Access-Control-Allow-Headers"] = "Authorization"
            headers["Access-Control-Max-Age"] = "600"
            return web.Response(status=204, headers=headers)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return middleware
