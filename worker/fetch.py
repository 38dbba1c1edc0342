"""Downloads for submit-url, through the node's outbound policy (`worker/outbound.py`).

Every connection goes through the policy's resolver, so a URL whose host resolves to a
private address is refused (SSRF); redirects are followed by hand so that every hop is
checked again. The body is streamed through the same spool writer as uploads, capped at
the same size, and never decompressed on the fly.

Slow servers cannot starve the download pool: each read must bring bytes within
`read_timeout` seconds, a download slower on average than `min_bytes_per_second` once its
first `grace_seconds` are past is abandoned, the whole download has a deadline, and at most
`per_origin` downloads run against one origin (host and port) at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from worker import outbound, spool
from worker.outbound import Network

REDIRECT_CODES = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for the task's `error`."""


@dataclass(frozen=True)
class DownloadLimits:
    deadline_seconds: float = 300
    read_timeout_seconds: float = 30
    min_bytes_per_second: int = 10_000
    grace_seconds: float = 30
    per_origin: int = 4
    total: int = 64


def download_session(allowed_networks: Sequence[Network], limits: DownloadLimits) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=limits.deadline_seconds, sock_connect=10, sock_read=limits.read_timeout_seconds
    )
    return outbound.guarded_session(allowed_networks, timeout, limits.total, limits.per_origin)


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
            target = outbound.check_url(current, allowed_networks)
        except outbound.Refused as error:
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
        except outbound.Refused as error:
            raise FetchError(str(error)) from None
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
