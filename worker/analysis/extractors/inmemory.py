"""Shared by extractors whose library decodes a whole member at once: a mapped input, a size gate."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from pathlib import Path

from worker.analysis.context import RATIO_FLOOR_BYTES, FileContext

# The libraries hand back each member as one buffer: a member declaring more is not decoded.
MAX_MEMBER_BYTES = 256 * 1024**2


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[memoryview]:
    """The file as a read-only memory map, so a large container is paged in, not copied."""
    with path.open("rb") as handle:
        if handle.seek(0, 2) == 0:
            yield memoryview(b"")
            return
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapping)
    try:
        yield view
    finally:
        # Slices a library still holds keep the map open until they are collected.
        with contextlib.suppress(BufferError):
            view.release()
            mapping.close()


def admit(context: FileContext, name: str, declared: int, packed: int) -> bool:
    """Whether a member of `declared` unpacked bytes may be decoded; records the limit when not.

    The checks the child writer makes while writing are made here before decoding, so that a
    member declaring gigabytes is never decoded into memory.
    """
    settings = context.settings
    ratio_cap = max(RATIO_FLOOR_BYTES, int(settings.unpack_max_ratio * max(1, packed)))
    limit = None
    if context.budget is not None and declared > context.budget.bytes_left:
        limit = ("total_bytes", f"{name}: declares {declared} bytes, more than the task may still expand")
    elif declared > ratio_cap:
        ratio = settings.unpack_max_ratio
        limit = ("ratio", f"{name}: declares {declared} bytes, more than {ratio:g} times its packed size")
    if limit is not None:
        context.extraction.limits.append({"limit": limit[0], "detail": limit[1]})
        return False
    if declared > MAX_MEMBER_BYTES:
        context.skip(name, f"declares {declared} bytes, over the {MAX_MEMBER_BYTES} decoded in memory")
        return False
    return True
