"""Writing one decoded member of a hand-parsed archive as a child, with its size and check value verified.

A member whose data turns out damaged keeps what was decoded before the damage (malware
analysts want it); the damage is returned as an error sentence. A limit drops the child
and ends the extraction as usual (the ratio limit only drops this member).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import BinaryIO

from worker.analysis.context import FileContext, LimitReached


def bounded_reader(handle: BinaryIO, size: int) -> Callable[[int], bytes]:
    """A `read(n)` over the next `size` bytes of `handle`, never past them."""
    left = size

    def read(wanted: int) -> bytes:
        nonlocal left
        if left <= 0:
            return b""
        data = handle.read(min(wanted, left))
        left -= len(data)
        return data

    return read


def write_member(
    context: FileContext,
    name: str,
    blocks: Iterable[bytes],
    packed: int,
    expected_size: int,
    checksum: Callable[[bytes, int], int] | None = None,
    expected_check: int | None = None,
    decode_errors: tuple[type[BaseException], ...] = (ValueError, EOFError),
) -> str | None:
    """Write `blocks` as the child `name`; an error sentence if the data was damaged, else None."""
    writer = context.child_writer(name, packed)
    check = 0
    damage: str | None = None
    try:
        for block in blocks:
            writer.write(block)
            if checksum is not None:
                check = checksum(block, check)
    except LimitReached as limit:
        writer.drop()
        if limit.limit != "ratio":
            raise
        context.extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
        return None
    except decode_errors as error:
        damage = f"{writer.name}: data damaged after {writer.written} bytes: {error}"
    except BaseException:
        writer.drop()
        raise
    writer.keep()
    if damage is not None:
        return damage
    if writer.written != expected_size:
        return f"{writer.name}: {writer.written} bytes decoded, the header says {expected_size}"
    if checksum is not None and expected_check is not None and check != expected_check:
        return f"{writer.name}: check value mismatch (damaged data or wrong header)"
    return None
