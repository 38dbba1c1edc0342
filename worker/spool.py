"""Streams an upload into the node's spool directory, hashing it on the way.

Nothing is ever named after the client: an upload lands in `incoming-<random>` and is
renamed to the task id once the task exists. Writing and hashing run in a thread
(hashlib and file writes release the GIL), one buffered megabyte at a time, so a large
upload costs bounded memory and never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from common.errors import ApiError

WRITE_BLOCK = 1024 * 1024
INLINE_BLOCK = 64 * 1024
DIGESTS = ("md5", "sha1", "sha256", "sha512")


class ChunkSource(Protocol):
    async def read_chunk(self, size: int = ...) -> bytes: ...


@dataclass
class SpooledFile:
    path: Path
    size: int = 0
    digests: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        discard(self.path)


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def task_spool_path(spool_dir: Path, task_id: int) -> Path:
    return spool_dir / str(task_id)


def _write_and_hash(handle: BinaryIO, hashers: list[Any], block: bytes) -> None:
    handle.write(block)
    for hasher in hashers:
        hasher.update(block)


async def receive(source: ChunkSource, spool_dir: Path, max_bytes: int) -> SpooledFile:
    """Copy `source` to a fresh spool file; 413 (and no file left behind) past max_bytes."""
    path = spool_dir / f"incoming-{secrets.token_hex(12)}"
    spooled = SpooledFile(path=path)
    hashers = [hashlib.new(name) for name in DIGESTS]
    loop = asyncio.get_running_loop()
    pending = bytearray()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as handle:
            while chunk := await source.read_chunk(256 * 1024):
                spooled.size += len(chunk)
                if spooled.size > max_bytes:
                    raise ApiError(413, f"the file is larger than the limit of {max_bytes} bytes")
                pending += chunk
                if len(pending) >= WRITE_BLOCK:
                    block, pending = bytes(pending), bytearray()
                    await loop.run_in_executor(None, _write_and_hash, handle, hashers, block)
            if len(pending) > INLINE_BLOCK:
                await loop.run_in_executor(None, _write_and_hash, handle, hashers, bytes(pending))
            elif pending:
                # A thread hop costs more than hashing and writing a small tail in place.
                _write_and_hash(handle, hashers, bytes(pending))
    except OSError as error:
        discard(path)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ApiError(
                503, "the Worker's spool disk is full; try again later", {"Retry-After": "30"}
            ) from None
        raise
    except BaseException:
        discard(path)
        raise
    spooled.digests = {name: hasher.hexdigest() for name, hasher in zip(DIGESTS, hashers, strict=True)}
    return spooled
