"""HTTP for the CLI: one aiohttp session, token or bearer authorization, and the retry rules.

Retries: an answer of 503 or 429 ("not now": the node is full, no Worker is healthy) is
tried again after its `Retry-After` (at most RETRY_AFTER_CAP seconds, 1 s without one),
for RETRY_BUDGET_SECONDS in all; a connection that fails or drops is tried again
CONNECTION_ATTEMPTS times in all, with a short backoff. Every other answer of 400 or more
is final and becomes a ServiceError carrying the service's own `message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

DEFAULT_HUB_PORT = "8080"
RETRY_STATUSES = frozenset({429, 503})
RETRY_AFTER_CAP = 60.0
RETRY_BUDGET_SECONDS = 300.0
CONNECTION_ATTEMPTS = 3
# A bearer is renewed when less than this is left of its lifetime (scanhub's last 300 s).
BEARER_RENEW_MARGIN_SECONDS = 30.0


def default_url(environ: Mapping[str, str] = os.environ) -> str:
    """`$SCANHUB_URL`, else the local Hub that `make run` starts."""
    port = environ.get("SCANHUB_HUB_PORT") or DEFAULT_HUB_PORT
    return environ.get("SCANHUB_URL") or f"http://127.0.0.1:{port}"


class ServiceError(Exception):
    """A request that failed for good: an error answer, a lost connection, a time-out."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BodyError(Exception):
    """The request body could not be made (its local file changed or could not be read):
    the same body would fail again, so it is never retried."""


def body_error(error: BaseException) -> BodyError | None:
    """The BodyError behind a failed send: aiohttp reports it as a connection error caused by it."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, BodyError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def error_message(response: aiohttp.ClientResponse) -> str:
    """`HTTP 403: <the service's message>`; scanhub answers errors as {"message": ...}."""
    text = await response.text(errors="replace")
    try:
        body = await response.json(content_type=None)
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"HTTP {response.status}: {message or text.strip()[:300] or response.reason}"


async def answer_body(response: aiohttp.ClientResponse) -> Any:
    """The JSON of an answer asked for; an error answer asked for (a 404 that says "no such
    route") may be anything, and is None when it is not JSON."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        if response.status < 400:
            raise
        return None


def retry_after(response: aiohttp.ClientResponse) -> float:
    text = response.headers.get("Retry-After", "")
    try:
        return min(RETRY_AFTER_CAP, max(0.0, float(text)))
    except ValueError:
        return 1.0


class Authorization:
    """No authorization: for services with no token configured."""

    # Whether requests carry a secret (a token, or a client secret for a bearer).
    sends_credentials = False

    async def headers(self, session: aiohttp.ClientSession, url: str) -> dict[str, str]:
        return {}

    def forget(self, url: str) -> bool:
        """Drop what is cached for `url`'s service after a 401; True when a retry may help."""
        return False


@dataclass
class StaticToken(Authorization):
    token: str
    sends_credentials = True

    async def headers(self, session: aiohttp.ClientSession, url: str) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


@dataclass
class BearerTokens(Authorization):
    """OAuth2 client credentials: a bearer from each service's own token endpoint.

    One bearer per service (scheme, host and port), because a bearer is valid only at the
    service that issued it unless the cluster shares one signing secret; a scan talks to the
    Hub and then to each Worker that took a file. A bearer is renewed before it expires, and
    once more after a 401 (the service restarted with a new secret).
    """

    client_id: str
    client_secret: str
    sends_credentials = True
    clock: Callable[[], float] = time.monotonic
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def headers(self, session: aiohttp.ClientSession, url: str) -> dict[str, str]:
        service = origin(url)
        lock = self.locks.setdefault(service, asyncio.Lock())
        async with lock:  # one token request per service, however many uploads wait for it
            token, expires = self.tokens.get(service, ("", 0.0))
            if expires - self.clock() < BEARER_RENEW_MARGIN_SECONDS:
                token, lifetime = await self.request(session, service)
                expires = self.clock() + lifetime
                self.tokens[service] = (token, expires)
        return {"Authorization": f"Bearer {token}"}

    async def request(self, session: aiohttp.ClientSession, service: str) -> tuple[str, float]:
        # Imported here: common.auth brings the server side (JWT, aiohttp.web), a fifth of
        # the command's start-up, which only bearer users need to pay for.
        from common.auth import TOKEN_PATH

        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        url = f"{service}{TOKEN_PATH}"
        try:
            async with session.post(url, data=form) as response:
                if response.status != 200:
                    raise ServiceError(f"bearer token from {url}: {await error_message(response)}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServiceError(f"bearer token from {url}: {describe(error)}") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise ServiceError(f"bearer token from {url}: the answer has no access_token")
        lifetime = body.get("expires_in", 300)
        return token, float(lifetime) if isinstance(lifetime, int | float) else 300.0

    def forget(self, url: str) -> bool:
        return self.tokens.pop(origin(url), None) is not None


def describe(error: BaseException) -> str:
    """A connection problem in one line: what failed, without a traceback."""
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        reason = getattr(error.certificate_error, "verify_message", None) or error.certificate_error
        return (
            f"cannot verify the certificate of {error.host}:{error.port}: certificate verify failed: "
            f"{reason} (for scanhub's own CA, give --ca-file)"
        )
    if isinstance(error, aiohttp.ClientConnectorError):
        number = error.os_error.errno
        # "Connection refused" rather than asyncio's "Connect call failed (...)"; a DNS
        # error's number is not an errno, its own text is the one to show.
        if isinstance(number, int) and number > 0:
            reason = os.strerror(number)
        else:
            reason = error.os_error.strerror or str(error.os_error)
        return f"cannot connect to {error.host}:{error.port}: {reason}"
    if isinstance(error, TimeoutError):
        return "timed out waiting for the service"
    return str(error) or type(error).__name__


def ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """HTTPS verified against `ca_file` (scanhub's own CA) as well as the system's CAs."""
    if ca_file is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(ca_file))
    return context


@dataclass
class Client:
    """Requests with authorization and retries, on a session `connect` opens."""

    session: aiohttp.ClientSession
    authorization: Authorization = field(default_factory=Authorization)
    sleep: Callable[[float], Any] = asyncio.sleep
    # Set when --url is https: credentials are never sent over plain http (to a task_url an
    # answer named, say), where anyone on the path could read them.
    https_only: bool = False

    def check_transport(self, url: str) -> None:
        if (
            self.https_only
            and self.authorization.sends_credentials
            and not url.lower().startswith("https://")
        ):
            raise ServiceError(
                f"refusing to send credentials in cleartext to {origin(url)}: --url is https, "
                f"so the token is only sent over https ({url})"
            )

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[], None] | None = None,
        accept: frozenset[int] = frozenset({200}),
    ) -> tuple[int, Any]:
        """(status, JSON body) of the first answer in `accept`; `body()` builds the request
        body afresh for each attempt. Raises ServiceError for anything else (see the module doc)."""
        budget_ends = time.monotonic() + RETRY_BUDGET_SECONDS
        connection_failures = 0
        retried_authorization = False
        self.check_transport(url)
        while True:
            request_headers = {**(headers or {}), **await self.authorization.headers(self.session, url)}
            try:
                async with self.session.request(
                    method, url, params=params, data=body() if body else None, headers=request_headers
                ) as response:
                    if response.status in accept:
                        return response.status, await answer_body(response)
                    if response.status in RETRY_STATUSES and time.monotonic() < budget_ends:
                        wait = retry_after(response)
                    elif (
                        response.status == 401
                        and not retried_authorization
                        and self.authorization.forget(url)
                    ):
                        retried_authorization, wait = True, 0.0
                    else:
                        raise ServiceError(await error_message(response), response.status)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as error:
                if (cause := body_error(error)) is not None:
                    raise cause from None
                connection_failures += 1
                if connection_failures >= CONNECTION_ATTEMPTS:
                    raise ServiceError(describe(error)) from None
                wait = 0.5 * 2 ** (connection_failures - 1)
            except aiohttp.InvalidURL:  # a task_url a service answered with, say
                raise ServiceError(f"not a URL that can be requested: {url}") from None
            except ValueError as error:  # a 2xx answer that is not JSON
                raise ServiceError(f"{url} answered something that is not JSON: {error}") from None
            if on_retry is not None:
                on_retry()
            await self.sleep(wait)

    async def get_json(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self.request("GET", url, params=params))[1]


def session_timeout() -> aiohttp.ClientTimeout:
    """Connect within 10 s; a service silent for 5 minutes is given up on. No total limit:
    an upload of a large file takes as long as the network needs."""
    return aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)


@contextlib.asynccontextmanager
async def connect(
    authorization: Authorization, ca_file: Path | None = None, concurrency: int = 8, url: str | None = None
) -> AsyncIterator[Client]:
    """A Client on a session of its own, closed (its connections cut) on the way out; `url`
    is --url: when it is https, credentials are sent over https only."""
    connector = aiohttp.TCPConnector(limit=max(10, 2 * concurrency), ssl=ssl_context(ca_file) or True)
    async with aiohttp.ClientSession(connector=connector, timeout=session_timeout()) as session:
        https_only = url is not None and url.lower().startswith("https://")
        yield Client(session, authorization, https_only=https_only)
