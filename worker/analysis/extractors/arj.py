"""ARJ extractor: members stored (method 0), compressed (methods 1 to 3) or fast-compressed (method 4).

No Python library reads ARJ, so the headers are read here (one at a time, each checked by
its CRC-32) and the data decoded by `decoders.lzhuff`, in bounded blocks. Garbled
(password-scrambled) members are reported, not opened.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from worker.analysis.context import Analyzer, FileContext, Findings, hit
from worker.analysis.decoders import lzhuff
from worker.analysis.extractors import lzh
from worker.analysis.extractors.members import bounded_reader, write_member

HEADER_ID = b"\x60\xea"
MAX_BASIC_HEADER = 2600  # the format's own limit
MAX_EXTENDED_HEADERS = 64
GARBLED, VOLUME = 0x01, 0x04
BINARY, TEXT, COMMENT, DIRECTORY = 0, 1, 2, 3
STORED, FASTEST = 0, 4


class HeaderError(ValueError):
    """A header that cannot be read; the members after it are lost."""


@dataclass
class Header:
    flags: int
    method: int
    file_type: int
    packed: int
    size: int
    crc: int
    name: str


def read_exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise HeaderError("header truncated")
    return data


def read_header(handle: BinaryIO) -> Header | None:
    """The next header (the file positioned after it), or None at the end-of-archive marker."""
    start = read_exact(handle, 4)
    if start[:2] != HEADER_ID:
        raise HeaderError("no ARJ header id")
    (size,) = struct.unpack_from("<H", start, 2)
    if size == 0:
        return None
    if size < 30 or size > MAX_BASIC_HEADER:
        raise HeaderError(f"bad basic header size {size}")
    basic = read_exact(handle, size)
    (crc,) = struct.unpack("<I", read_exact(handle, 4))
    if zlib.crc32(basic) != crc:
        raise HeaderError("header CRC mismatch")
    for _ in range(MAX_EXTENDED_HEADERS):
        (extended,) = struct.unpack("<H", read_exact(handle, 2))
        if extended == 0:
            break
        read_exact(handle, extended + 4)  # its data and CRC: nothing here is needed
    else:
        raise HeaderError("too many extended headers")
    first_size = basic[0]
    if first_size < 30 or first_size > size:
        raise HeaderError(f"bad first header size {first_size}")
    flags, method, file_type = basic[4], basic[5], basic[6]
    packed, original, file_crc = struct.unpack_from("<III", basic, 12)
    name = basic[first_size:].split(b"\0", 1)[0]
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        text = name.decode("cp437")
    return Header(flags, method, file_type, packed, original, file_crc, text.replace("\\", "/") or "unnamed")


def decoded(header: Header, handle: BinaryIO) -> Iterator[bytes]:
    read = bounded_reader(handle, header.packed)
    if header.method == STORED:
        return lzh.stored(read)
    if header.method == FASTEST:
        return lzhuff.decode_fast(read, header.size)
    return lzhuff.decode_huffman(read, header.size, lzhuff.ARJ)


def crc32(data: bytes, value: int) -> int:
    return zlib.crc32(data, value)


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    garbled: list[str] = []
    with context.path.open("rb") as handle:
        try:
            if read_header(handle) is None:  # the archive's main header
                return {}
        except HeaderError as error:
            return {"errors": [f"ARJ main header unreadable: {error}"]}
        while True:
            context.check_time("reading ARJ headers")
            offset = handle.tell()
            try:
                header = read_header(handle)
            except HeaderError as error:
                errors.append(
                    f"ARJ header at offset {offset} unreadable ({error}); members after it not read"
                )
                break
            if header is None:
                break
            data_start = handle.tell()
            if header.file_type not in (BINARY, TEXT):
                handle.seek(data_start + header.packed)
                continue
            context.extraction.members += 1
            if header.flags & GARBLED:
                context.skip(header.name, "garbled (password-scrambled) ARJ member")
                garbled.append(header.name)
            elif header.method > FASTEST:
                context.skip(header.name, f"unsupported method {header.method}")
            else:
                damage = write_member(
                    context,
                    header.name,
                    decoded(header, handle),
                    header.packed,
                    header.size,
                    crc32,
                    header.crc,
                )
                if damage:
                    errors.append(damage)
                if header.flags & VOLUME:
                    errors.append(f"{header.name}: continues in the next volume of a multi-volume archive")
            handle.seek(data_start + header.packed)
    findings: Findings = {"errors": errors} if errors else {}
    if garbled:
        findings["heuristics"] = [hit("archive:password-unknown", *garbled[:5])]
        findings["story"] = [f"{len(garbled)} ARJ member(s) are garbled with a password and were not opened."]
    return findings


ANALYZER = Analyzer(name="arj", version="1", run=extract, accepts=("Archive/ARJ",), extracts=True)
