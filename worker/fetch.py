"""Downloads for submit-url, refusing targets inside private networks (SSRF).

Every connection goes through `GuardedResolver`, which drops addresses that are not
globally routable (loopback, private, link-local, multicast, reserved, CGNAT...) unless a
configured network allows them, so a DNS answer that changes between check and connect
cannot smuggle a private address in. aiohttp does not consult the resolver for IP-literal
hosts, so those are checked directly, and redirects are followed by hand so that every hop
is checked again. The body is streamed through the same spool writer as uploads, capped
at the same size, and never decompressed on the fly.

Slow servers cannot starve the download pool: each read must bring bytes within
`read_timeout` seconds, a download slower on average than `min_bytes_per_second` once its
first `grace_seconds` are past is abandoned, the whole download has a deadline, and at most
`per_origin` downloads run against one origin (host and port) at a time.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from worker import spool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECT_CODES = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for the task's `error`."""


def parse_networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_PREFIX or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(address: str, allowed_networks: Sequence[Network]) -> bool:
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in network for network in allowed_networks):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in SITE_LOCAL:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return address_allowed(str(inner), allowed_networks)
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    def __init__(self, allowed_networks: Sequence[Network]):
        self.allowed_networks = list(allowed_networks)
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [result for result in results if address_allowed(result["host"], self.allowed_networks)]
        if not allowed:
            raise FetchError(f"{host} resolves only to addresses that are not allowed")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def check_url(url: str, allowed_networks: Sequence[Network]) -> URL:
    """Syntax and literal-address checks; raises ValueError with a client-facing reason."""
    if len(url) > 4096:
        raise ValueError("the URL is longer than 4096 characters")
    parsed = URL(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs can be submitted")
    if not parsed.host:
        raise ValueError("the URL has no host")
    literal = literal_address(parsed.host)
    if literal is not None and not address_allowed(literal, allowed_networks):
        raise ValueError(f"the URL points at {literal}, which is not a public address")
    return parsed


async def check_resolves_publicly(url: URL, allowed_networks: Sequence[Network]) -> None:
    """At submission, refuse a host with no allowed address at all (400, not a failed task)."""
    if literal_address(url.host or ""):
        return
    resolver = GuardedResolver(allowed_networks)
    try:
        await resolver.resolve(url.host or "", url.port or 0, socket.AF_UNSPEC)
    except FetchError as error:
        raise ValueError(str(error)) from None
    except OSError as error:
        raise ValueError(f"cannot resolve {url.host}: {error}") from None
    finally:
        await resolver.close()


@dataclass(frozen=True)
class DownloadLimits:
    deadline_seconds: float = 300
    read_timeout_seconds: float = 30
    min_bytes_per_second: int = 10_000
    grace_seconds: float = 30
    per_origin: int = 4
    total: int = 64


def guarded_session(allowed_networks: Sequence[Network], limits: DownloadLimits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allowed_networks), limit=limits.total, limit_per_host=limits.per_origin
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=limits.deadline_seconds, sock_connect=10, sock_read=limits.read_timeout_seconds
        ),
        trust_env=False,  # never route through a proxy from the environment
        auto_decompress=False,
    )


async def fetch_to_spool(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    spool_dir: Path,
    max_bytes: int,
    max_redirects: int,
    allowed_networks: Sequence[Network],
    limits: DownloadLimits = DownloadLimits(),
) -> spool.SpooledFile:
    current = url
    origin = URL(url).origin()
    for _ in range(max_redirects + 1):
        try:
            target = check_url(current, allowed_networks)
        except ValueError as error:
            raise FetchError(str(error)) from None
        if target.origin() != origin:
            headers = {}  # the caller's credentials are for the first origin only
        try:
            async with session.get(target, headers=headers, allow_redirects=False) as response:
                if response.status in REDIRECT_CODES and "Location" in response.headers:
                    current = urljoin(str(target), response.headers["Location"])
                    continue
                if response.status != 200:
                    raise FetchError(f"the server answered {response.status} {response.reason}")
                if response.content_length and response.content_length > max_bytes:
                    raise FetchError(f"the file is larger than the limit of {max_bytes} bytes")
                try:
                    # A full disk fails the download like any other error: no client
                    # waits on this request, so no Retry-After reaches anyone.
                    return await spool.receive(
                        _Chunks(response.content, limits), spool_dir, max_bytes, retry_after_seconds=0
                    )
                except TimeoutError:
                    raise FetchError(
                        f"download timed out: no data for {limits.read_timeout_seconds:g} s"
                    ) from None
                except Exception as error:  # ApiError(413) or a broken connection
                    raise FetchError(getattr(error, "message", None) or f"download failed: {error}") from None
        except aiohttp.ClientError as error:
            raise FetchError(f"download failed: {type(error).__name__}: {error}") from None
        except TimeoutError:
            raise FetchError("download timed out") from None
    raise FetchError(f"more than {max_redirects} redirects")


class _Chunks:
    """Adapts a response body stream to the spool writer's read_chunk interface, and
    abandons a download that stays below the minimum rate after its grace period."""

    def __init__(self, stream: aiohttp.StreamReader, limits: DownloadLimits):
        self.stream, self.limits = stream, limits
        self.started = time.monotonic()
        self.received = 0

    async def read_chunk(self, size: int = 256 * 1024) -> bytes:
        block = await self.stream.read(size)
        self.received += len(block)
        elapsed = time.monotonic() - self.started
        minimum = self.limits.min_bytes_per_second
        if block and elapsed > self.limits.grace_seconds and self.received < minimum * elapsed:
            rate = self.received / elapsed
            raise FetchError(f"the server sends too slowly ({rate:.0f} bytes/s, the minimum is {minimum})")
        return block
