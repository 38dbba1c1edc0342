"""Connection limits for both services: a cap on open connections and a header deadline.

aiohttp reads requests as slowly as clients send them. Without limits a few hundred
connections that never finish their headers (slowloris) hold sockets until the file
descriptors run out and the service refuses everyone. `GuardedProtocol` wraps aiohttp's
protocol for each connection:

- above `max_connections` open at once, a new connection gets a 503 JSON answer with
  Retry-After and is closed, instead of waiting in the accept queue or hitting the fd limit;
- a connection must deliver complete request headers within `header_timeout_seconds` of
  opening (later requests on a kept-alive connection: of the previous answer, aiohttp's
  keep-alive timeout); otherwise it is closed.

- on an HTTPS port, a client that speaks plain HTTP gets a 400 JSON answer saying so (the
  TLS handshake would otherwise just drop it): the first byte of a TLS connection is a
  handshake record (0x16), so the protocol looks at it before starting TLS itself.

Bodies have their own limit, per read, in the handlers (`common.streaming.timed_reads`),
since only they know when a body is complete.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from asyncio import sslproto
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)
# File descriptors kept for everything that is not a client connection (Redis, spool files,
# outgoing connections, the listening socket...).
RESERVED_DESCRIPTORS = 64


@dataclass
class ConnectionLimits:
    """The limits, and what they did (read by the services' /metrics)."""

    max_connections: int
    header_timeout_seconds: float
    retry_after_seconds: int
    open: int = 0
    refused: int = 0
    timed_out: int = 0
    plain_http: int = 0


CONNECTION_LIMITS = web.AppKey("connection_limits", ConnectionLimits)


def connection_cap(configured: int) -> int:
    """The configured cap, kept below this process's file descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - RESERVED_DESCRIPTORS))


def raw_answer(status: str, message: str, extra_headers: str = "") -> bytes:
    """A whole HTTP/1.1 answer written before aiohttp has the connection: JSON, then close."""
    body = orjson.dumps({"message": message})
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra_headers}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def overloaded_answer(retry_after_seconds: int) -> bytes:
    return raw_answer(
        "503 Service Unavailable",
        "too many open connections; try again",
        f"Retry-After: {retry_after_seconds}\r\n",
    )


PLAIN_HTTP_ANSWER = raw_answer("400 Bad Request", "this port speaks HTTPS: send the request to https://")
TLS_HANDSHAKE = 0x16


def replay(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand bytes already read to a buffered protocol, as the event loop would have."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap and the header deadline."""

    def __init__(self, inner: Any, limits: ConnectionLimits, ssl_context: ssl.SSLContext | None = None):
        self.inner, self.limits = inner, limits
        self.transport: asyncio.Transport | None = None
        self.counted = False
        self.deadline: asyncio.TimerHandle | None = None
        # HTTPS: until the first bytes say whether the client speaks TLS.
        self.ssl_context = ssl_context
        self.undecided = ssl_context is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.counted:  # the TLS layer, once its handshake is done: the decrypted transport
            self.inner.connection_made(transport)
            return
        self.transport = transport  # type: ignore[assignment]
        limits = self.limits
        if limits.open >= limits.max_connections:
            limits.refused += 1
            if limits.refused == 1 or limits.refused % 1000 == 0:
                log.warning("%d connection(s) refused: %d open (the cap)", limits.refused, limits.open)
            transport.write(overloaded_answer(limits.retry_after_seconds))  # type: ignore[attr-defined]
            transport.close()
            return
        limits.open += 1
        self.counted = True
        if not self.undecided:
            self.inner.connection_made(transport)
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(limits.header_timeout_seconds, self.headers_overdue)

    def start_tls_or_refuse(self, first: bytes) -> None:
        """TLS for a TLS client (the bytes read so far replayed into it); a 400 for plain HTTP."""
        self.undecided = False
        transport, context = self.transport, self.ssl_context
        if transport is None or context is None:
            return
        if first[0] != TLS_HANDSHAKE:
            self.limits.plain_http += 1
            transport.write(PLAIN_HTTP_ANSWER)
            transport.close()
            return
        loop = asyncio.get_running_loop()
        tls = sslproto.SSLProtocol(loop, self, context, loop.create_future(), server_side=True)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        replay(tls, first)

    def headers_overdue(self) -> None:
        self.deadline = None
        if (self.undecided or getattr(self.inner, "_request_count", 1) == 0) and self.transport is not None:
            self.limits.timed_out += 1
            log.info("closed a connection that sent no complete request headers in time")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.counted or not data:
            return
        if self.undecided:
            self.start_tls_or_refuse(data)
            return
        self.inner.data_received(data)
        if self.deadline is not None and getattr(self.inner, "_request_count", 1) > 0:
            self.deadline.cancel()
            self.deadline = None

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted and not self.undecided else None

    def pause_writing(self) -> None:
        if self.counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.counted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        if self.counted:
            self.limits.open -= 1
            self.counted = False
            if not self.undecided and getattr(self.inner, "transport", None) is not None:
                self.inner.connection_lost(exc)
