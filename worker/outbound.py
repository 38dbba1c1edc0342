"""The outbound policy: where a Worker node may connect on its own initiative.

Every outbound connection of a node goes through here: submit-url downloads, report
callbacks, Splunk HEC events and S3 writes. Only globally routable addresses are allowed
(no loopback, private, link-local, multicast, reserved, CGNAT, site-local, nor an IPv6
address that embeds one of those), plus the networks an operator lists in
`SCANHUB_OUTBOUND_ALLOWED_NETWORKS` (its older name `SCANHUB_SUBMIT_URL_ALLOWED_NETWORKS`
is still read). A receiver on the node's own network, a local S3 or a Splunk in a private
range must therefore be listed there.

The check happens when connecting, not only when a URL is accepted: aiohttp clients use
`GuardedResolver`, which drops refused addresses from every DNS answer, so a name that
resolves differently between check and connect cannot smuggle a private address in.
IP-literal hosts skip the resolver in aiohttp, so `check_url` checks them directly; callers
that follow redirects check every hop. Clients that do not take a resolver (boto3 for S3)
check the endpoint's addresses with `check_endpoint` before each use.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
MAX_URL_LENGTH = 4096


class Refused(Exception):
    """The policy refuses this connection; the message says why, for a task's record."""


def parse_networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


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
    """aiohttp's resolver, keeping only the addresses the policy allows."""

    def __init__(self, allowed_networks: Sequence[Network]):
        self.allowed_networks = list(allowed_networks)
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [result for result in results if address_allowed(result["host"], self.allowed_networks)]
        if not allowed:
            raise Refused(f"{host} resolves only to addresses that are not allowed")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def check_url(url: str, allowed_networks: Sequence[Network]) -> URL:
    """Syntax and literal-address checks; raises Refused with a reason a user can act on."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
    except ValueError as error:
        raise Refused(f"the URL is malformed: {error}") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused("only http and https URLs are allowed")
    if not parsed.host:
        raise Refused("the URL has no host")
    literal = literal_address(parsed.host)
    if literal is not None and not address_allowed(literal, allowed_networks):
        raise Refused(f"the URL points at {literal}, which is not a public address")
    return parsed


async def check_resolves(url: URL, allowed_networks: Sequence[Network]) -> None:
    """Refuse a host with no allowed address at all (so a client hears it at once)."""
    if literal_address(url.host or ""):
        return
    resolver = GuardedResolver(allowed_networks)
    try:
        await resolver.resolve(url.host or "", url.port or 0, socket.AF_UNSPEC)
    except OSError as error:
        raise Refused(f"cannot resolve {url.host}: {error}") from None
    finally:
        await resolver.close()


def check_endpoint(url: str, allowed_networks: Sequence[Network]) -> None:
    """For clients without a pluggable resolver: every address the endpoint's host
    resolves to must be allowed (so a later, different answer is allowed too)."""
    parsed = check_url(url, allowed_networks)
    if literal_address(parsed.host or ""):
        return
    try:
        answers = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Refused(f"cannot resolve {parsed.host}: {error}") from None
    addresses = {str(answer[4][0]) for answer in answers}
    refused = sorted(address for address in addresses if not address_allowed(address, allowed_networks))
    if refused:
        raise Refused(f"{parsed.host} resolves to {', '.join(refused)}, which is not allowed")


def guarded_session(
    allowed_networks: Sequence[Network],
    timeout: aiohttp.ClientTimeout,
    total_connections: int = 64,
    per_host: int = 0,
    ssl: object = True,
    keepalive_seconds: float = 15,
) -> aiohttp.ClientSession:
    """An aiohttp client whose every connection obeys the policy."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allowed_networks),
        limit=total_connections,
        limit_per_host=per_host,
        ssl=ssl,  # type: ignore[arg-type]
        keepalive_timeout=keepalive_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,  # never route through a proxy from the environment
        auto_decompress=False,
        # No cookies kept: one receiver's cookie must never ride along to the next.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
