"""Streams an upload into the node's spool directory, hashing it on the way.

Nothing is ever named after the client: an upload lands in `incoming-<random>` and is
renamed to the task id once the task exists. The streaming itself (bounded memory, limit,
disk full) is common/streaming.py's, shared with the Hub.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from common.streaming import stream_to_file, timed_reads
from worker.digests import DIGESTS

# Uploads land under this prefix until their task exists (then they are renamed to its id).
INCOMING_PREFIX = "incoming-"


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


async def receive(
    source: ChunkSource,
    spool_dir: Path,
    max_bytes: int,
    *,
    retry_after_seconds: int,
    read_timeout_seconds: float | None = None,
) -> SpooledFile:
    """Copy `source` to a fresh spool file; 413 (and no file left behind) past max_bytes."""
    path = spool_dir / f"{INCOMING_PREFIX}{secrets.token_hex(12)}"
    too_large = f"the file is larger than the limit of {max_bytes} bytes"
    size, digests = await stream_to_file(
        timed_reads(lambda: source.read_chunk(256 * 1024), read_timeout_seconds),
        path,
        max_bytes,
        too_large,
        "Worker",
        DIGESTS,
        retry_after_seconds=retry_after_seconds,
    )
    return SpooledFile(path=path, size=size, digests=digests)
