"""CPIO extractor: binary (either byte order), odc (070707), newc (070701) and crc (070702) archives.

A small streaming reader: one header, then its file, then the next, so the limits stop a
hostile archive as it is read. It also reads the payload of RPM packages (see `rpm.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from worker.analysis.context import BLOCK, Analyzer, FileContext, Findings

TRAILER = "TRAILER!!!"
MAX_NAME_BYTES = 64 * 1024
FILE_TYPE_MASK, REGULAR, DIRECTORY, SYMLINK = 0o170000, 0o100000, 0o040000, 0o120000
BINARY_MAGIC = 0o070707


class CpioError(ValueError):
    """The archive is damaged or truncated."""


@dataclass
class Header:
    name: str
    mode: int
    size: int


def read_exactly(stream: IO[bytes], size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CpioError(f"truncated in {what}")
    return data


def parse_number(field: bytes, base: int) -> int:
    try:
        return int(field, base)
    except ValueError:
        raise CpioError(f"bad number {field!r} in a header") from None


def read_header(stream: IO[bytes]) -> tuple[Header, int, int] | None:
    """The next header, its name padding and its data padding; None at the end of the stream."""
    start = stream.read(6)
    if not start:
        return None
    if len(start) < 6:
        raise CpioError("truncated header")
    if start in (b"070701", b"070702"):
        fields = read_exactly(stream, 104, "a newc header")
        numbers = [parse_number(fields[i : i + 8], 16) for i in range(0, 104, 8)]
        mode, size, name_size = numbers[1], numbers[6], numbers[11]
        name_padding, data_padding = -(110 + name_size) % 4, -size % 4
    elif start == b"070707":
        fields = read_exactly(stream, 70, "an odc header")
        mode = parse_number(fields[12:18], 8)
        name_size, size = parse_number(fields[53:59], 8), parse_number(fields[59:70], 8)
        name_padding = data_padding = 0
    elif (
        int.from_bytes(start[:2], "little") == BINARY_MAGIC
        or int.from_bytes(start[:2], "big") == BINARY_MAGIC
    ):
        order = "little" if int.from_bytes(start[:2], "little") == BINARY_MAGIC else "big"
        raw = start + read_exactly(stream, 20, "a binary header")
        words = [int.from_bytes(raw[i : i + 2], order) for i in range(0, 26, 2)]  # type: ignore[arg-type]
        mode, name_size = words[3], words[10]
        size = (words[11] << 16) | words[12]  # the most significant half first, whatever the order
        name_padding, data_padding = name_size % 2, size % 2
    else:
        raise CpioError(f"unknown header magic {start!r}")
    if name_size > MAX_NAME_BYTES:
        raise CpioError(f"a name of {name_size} bytes")
    raw_name = read_exactly(stream, name_size, "a name")
    read_exactly(stream, name_padding, "a name's padding")
    name = raw_name.rstrip(b"\0").decode("utf-8", "surrogateescape")
    return Header(name, mode, size), name_padding, data_padding


def member_blocks(stream: IO[bytes], size: int, left: list[int]) -> Iterator[bytes]:
    """The member's bytes one block at a time; `left[0]` tracks what is still unread."""
    while left[0] > 0:
        block = stream.read(min(BLOCK, left[0]))
        if not block:
            raise CpioError(f"truncated in a file of {size} bytes")
        left[0] -= len(block)
        yield block


def skip_bytes(stream: IO[bytes], size: int) -> None:
    while size > 0:
        block = stream.read(min(BLOCK, size))
        if not block:
            raise CpioError("truncated in a file's data")
        size -= len(block)


def read_cpio(context: FileContext, stream: IO[bytes], packed: int | None = None) -> list[str]:
    """Extract every regular file of the cpio stream; the errors met (an empty list if none)."""
    try:
        while (found := read_header(stream)) is not None:
            header, _, data_padding = found
            if header.name == TRAILER:
                break
            kind = header.mode & FILE_TYPE_MASK
            if kind == DIRECTORY:
                skip_bytes(stream, header.size + data_padding)
                continue
            context.extraction.members += 1
            if kind != REGULAR:
                context.skip(header.name, "link" if kind == SYMLINK else "special file")
                skip_bytes(stream, header.size + data_padding)
                continue
            left = [header.size]
            context.extract(header.name, member_blocks(stream, header.size, left), packed)
            skip_bytes(stream, left[0] + data_padding)  # what a dropped child left unread
    except CpioError as error:
        return [f"cpio: {error}"]
    return []


def extract(context: FileContext) -> Findings:
    with context.path.open("rb") as stream:
        errors = read_cpio(context, stream)
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(name="cpio", version="1", run=extract, accepts=("Archive/CPIO",), extracts=True)
