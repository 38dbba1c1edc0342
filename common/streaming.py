"""Streams a request body to a spool file in bounded memory, hashing it on the way if asked.

Writing and hashing run in a thread (hashlib and file writes release the GIL), one buffered
megabyte at a time, so a large body never stalls the event loop; a small tail is written in
place, where a thread hop would cost more. The size limit is enforced while streaming, and
whatever goes wrong leaves no file behind. Both the Worker and the Hub spool through here; where the
Worker keeps the files it spooled is `worker/spool.py`.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from common.errors import ApiError

WRITE_BLOCK = 1024 * 1024
INLINE_BLOCK = 64 * 1024


async def timed_reads(read: Callable[[], Awaitable[bytes]], seconds: float | None) -> AsyncIterator[bytes]:
    """The blocks `read()` returns until it returns b""; 408 when one takes longer than
    `seconds` (a client that stopped sending mid-body). None: no limit."""
    while True:
        if seconds is None:
            block = await read()
        else:
            try:
                async with asyncio.timeout(seconds):
                    block = await read()
            except TimeoutError:
                raise ApiError(408, f"the request body stalled: nothing arrived for {seconds:g} s") from None
        if not block:
            return
        yield block


def write_and_hash(handle: BinaryIO, hashers: list[Any], block: bytes) -> None:
    handle.write(block)
    for hasher in hashers:
        hasher.update(block)


async def stream_to_file(
    chunks: AsyncIterator[bytes],
    path: Path,
    limit: int,
    too_large: str,
    service: str,
    digest_names: Sequence[str] = (),
    *,
    retry_after_seconds: int,
) -> tuple[int, dict[str, str]]:
    """Write `chunks` to a new file at `path`; returns (size, {digest name: hex}).

    413 `too_large` past `limit` bytes; 503 with `Retry-After: retry_after_seconds` when
    the disk is full.
    """
    hashers = [hashlib.new(name) for name in digest_names]
    loop = asyncio.get_running_loop()
    pending = bytearray()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, too_large)
                pending += chunk
                if len(pending) >= WRITE_BLOCK:
                    block, pending = bytes(pending), bytearray()
                    await loop.run_in_executor(None, write_and_hash, handle, hashers, block)
            if len(pending) > INLINE_BLOCK:
                await loop.run_in_executor(None, write_and_hash, handle, hashers, bytes(pending))
            elif pending:
                write_and_hash(handle, hashers, bytes(pending))
    except OSError as error:
        path.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            full = f"the {service}'s spool disk is full; try again later"
            raise ApiError(503, full, {"Retry-After": str(retry_after_seconds)}) from None
        raise
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size, {name: hasher.hexdigest() for name, hasher in zip(digest_names, hashers, strict=True)}
