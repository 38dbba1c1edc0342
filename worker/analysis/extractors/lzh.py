"""LHA/LZH extractor: header levels 0 to 3, members stored (-lh0-, -lz4-) or -lh5-/-lh6-/-lh7-.

Written here rather than with `lhafile`, which parses the whole directory before the first
member and holds each member whole in memory (compressed and decompressed); this reads one
header at a time and decodes each member in bounded blocks (`decoders.lzhuff`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.decoders import lzhuff
from worker.analysis.extractors.members import bounded_reader, write_member

HUFFMAN_METHODS = {b"-lh5-": lzhuff.LH5, b"-lh6-": lzhuff.LH6, b"-lh7-": lzhuff.LH7}
STORED_METHODS = (b"-lh0-", b"-lz4-")
DIRECTORY_METHOD = b"-lhd-"
EXT_FILENAME, EXT_DIRECTORY = 0x01, 0x02
# A header larger than this is damage, not a file name (level 2 sizes are 16-bit anyway).
MAX_HEADER_BYTES = 64 * 1024
MAX_EXTENDED_HEADERS = 256


def crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC16_TABLE = crc16_table()


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/ARC, the check value LHA stores."""
    table = CRC16_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class HeaderError(ValueError):
    """A header that cannot be read; the members after it are lost."""


@dataclass
class Member:
    method: bytes
    name: str
    packed: int
    size: int
    crc: int


def text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise HeaderError("header truncated")
    return data


def extended_headers(handle: BinaryIO, first_size: int, width: int) -> tuple[dict[int, bytes], int]:
    """The extended headers chained from `first_size`: their contents by type, and their total size."""
    found: dict[int, bytes] = {}
    total = 0
    size = first_size
    for _ in range(MAX_EXTENDED_HEADERS):
        if size == 0:
            return found, total
        if size < 1 + width or size > MAX_HEADER_BYTES:
            raise HeaderError(f"bad extended header size {size}")
        raw = read_exact(handle, size)
        found.setdefault(raw[0], raw[1 : size - width])
        total += size
        size = int.from_bytes(raw[size - width :], "little")
    raise HeaderError("too many extended headers")


def read_member(handle: BinaryIO) -> Member | None:
    """The next member's header (the file positioned at its data), or None at the archive's end."""
    start = handle.read(22)
    if not start or start[0] == 0:
        return None
    if len(start) < 22:
        raise HeaderError("header truncated")
    method = start[2:7]
    if not (method.startswith(b"-l") and method.endswith(b"-")):
        raise HeaderError(f"not an LHA header (method {method!r})")
    level = start[20]
    packed, size = struct.unpack_from("<II", start, 7)
    if level in (0, 1):
        header_size = start[0] + 2
        if header_size < 24:
            raise HeaderError(f"header of {header_size} bytes is too short")
        rest = read_exact(handle, header_size - 22)
        name_length = start[21]
        if name_length + 2 > len(rest):
            raise HeaderError("file name runs past the header")
        name = rest[:name_length]
        (crc,) = struct.unpack_from("<H", rest, name_length)
        extras: dict[int, bytes] = {}
        if level == 1:
            first_size = int.from_bytes(rest[-2:], "little")
            extras, extended = extended_headers(handle, first_size, 2)
            packed -= extended  # a level-1 "skip size" counts the extended headers too
            if packed < 0:
                raise HeaderError("extended headers larger than the member")
    elif level == 2:
        (header_size,) = struct.unpack_from("<H", start, 0)
        head = start + read_exact(handle, 4)
        crc, first_size = struct.unpack_from("<H", head, 21)[0], struct.unpack_from("<H", head, 24)[0]
        extras, extended = extended_headers(handle, first_size, 2)
        if 26 + extended > header_size:
            raise HeaderError("extended headers larger than the header")
        read_exact(handle, header_size - 26 - extended)  # padding some archivers add
        name = b""
    elif level == 3:
        head = start + read_exact(handle, 10)
        crc, first_size = struct.unpack_from("<H", head, 21)[0], struct.unpack_from("<I", head, 28)[0]
        extras, _ = extended_headers(handle, first_size, 4)
        name = b""
    else:
        raise HeaderError(f"unknown header level {level}")
    name = extras.get(EXT_FILENAME, name)
    directory = extras.get(EXT_DIRECTORY, b"").replace(b"\xff", b"/").rstrip(b"/")
    full = text(directory + b"/" + name if directory else name).replace("\\", "/")
    return Member(method, full or "unnamed", packed, size, crc)


def stored(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while block := read(1024 * 1024):
        yield block


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with context.path.open("rb") as handle:
        while True:
            context.check_time("reading LHA headers")
            offset = handle.tell()
            try:
                member = read_member(handle)
            except HeaderError as error:
                errors.append(
                    f"LHA header at offset {offset} unreadable ({error}); members after it not read"
                )
                break
            if member is None:
                break
            data_start = handle.tell()
            if member.method == DIRECTORY_METHOD:
                handle.seek(data_start + member.packed)
                continue
            context.extraction.members += 1
            read = bounded_reader(handle, member.packed)
            blocks: Iterator[bytes]
            if member.method in STORED_METHODS:
                blocks = stored(read)
            elif member.method in HUFFMAN_METHODS:
                blocks = lzhuff.decode_huffman(read, member.size, HUFFMAN_METHODS[member.method])
            else:
                context.skip(member.name, f"unsupported method {member.method.decode('latin-1')}")
                handle.seek(data_start + member.packed)
                continue
            damage = write_member(context, member.name, blocks, member.packed, member.size, crc16, member.crc)
            if damage:
                errors.append(damage)
            handle.seek(data_start + member.packed)
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(name="lzh", version="1", run=extract, accepts=("Archive/LZH",), extracts=True)
