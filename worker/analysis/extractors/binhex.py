"""BinHex 4.0 extractor: the data fork (and resource fork) of a .hqx file, decoded while streaming.

BinHex 4.0 is small and fully specified: text between two colons in a 64-character
alphabet (the bit packing of base64, so it is translated to base64 and decoded by
binascii), then run-length decoding (0x90 marker), then a header (name, type, creator,
fork lengths, CRC) followed by the data and resource forks, each with a CRC-CCITT. The
stdlib binhex module that did this was removed in Python 3.11.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from typing import IO

from worker.analysis.context import Analyzer, FileContext, Findings

INTRO = b"(This file must be converted with BinHex"
ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
TO_BASE64 = bytes.maketrans(ALPHABET, BASE64)
WHITESPACE = b" \t\r\n"
VALID = set(ALPHABET)
RUN_MARKER = 0x90
SCAN_BYTES = 8 * 1024**2
READ_BLOCK = 64 * 1024
FORK_BLOCK = 1024 * 1024


class BinHexError(ValueError):
    """The BinHex text or its decoded structure is damaged."""


def has_binhex(context: FileContext) -> bool:
    return context.is_a("Text", "BinHex") or INTRO in context.read_head(SCAN_BYTES)


def six_bit_blocks(handle: IO[bytes]) -> Iterator[bytes]:
    """The 8-bit bytes the characters between the first and the closing colon stand for."""
    carry = b""
    closed = False
    while not closed and (chunk := handle.read(READ_BLOCK)):
        end = chunk.find(b":")
        if end >= 0:
            chunk, closed = chunk[:end], True
        text = chunk.translate(None, WHITESPACE)
        if not VALID.issuperset(text):
            bad = next(char for char in text if char not in VALID)
            raise BinHexError(f"character {chr(bad)!r} is not in the BinHex alphabet")
        text = carry + text.translate(TO_BASE64)
        usable = len(text) - len(text) % 4
        carry = text[usable:]
        yield binascii.a2b_base64(text[:usable])
    if not closed:
        raise BinHexError("no closing colon (truncated)")
    if carry:
        # The last group is not padded: decode what its characters hold.
        yield binascii.a2b_base64(carry.ljust(4, b"A"))[: len(carry) * 6 // 8]


def run_length_decoded(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Undo BinHex run-length encoding: 0x90 n repeats the previous byte n-1 more times (n=0: 0x90)."""
    last = 0
    marker_pending = False
    for block in blocks:
        out = bytearray()
        position = 0
        while position < len(block):
            if marker_pending:
                count = block[position]
                position += 1
                marker_pending = False
                if count == 0:
                    out.append(RUN_MARKER)
                    last = RUN_MARKER
                else:
                    out += bytes((last,)) * (count - 1)
                continue
            marker = block.find(RUN_MARKER, position)
            stop = len(block) if marker < 0 else marker
            if stop > position:
                out += block[position:stop]
                last = block[stop - 1]
            position = stop
            if marker >= 0:
                marker_pending = True
                position += 1
        yield bytes(out)


class ByteStream:
    """Exact-length reads over a stream of blocks."""

    def __init__(self, blocks: Iterator[bytes]):
        self.blocks = blocks
        self.buffer = bytearray()

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            block = next(self.blocks, None)
            if block is None:
                break
            self.buffer += block
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def exact(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) < size:
            raise BinHexError(f"stream ends inside the {what}")
        return data


def fork(stream: ByteStream, length: int, what: str, crc_errors: list[str]) -> Iterator[bytes]:
    crc = 0
    left = length
    while left > 0:
        block = stream.exact(min(FORK_BLOCK, left), what)
        crc = binascii.crc_hqx(block, crc)
        left -= len(block)
        yield block
    stored = struct.unpack(">H", stream.exact(2, f"{what} CRC"))[0]
    if stored != crc:
        crc_errors.append(f"{what} CRC mismatch (stored {stored:#06x}, computed {crc:#06x})")


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with context.path.open("rb") as handle:
        head = context.read_head(SCAN_BYTES)
        intro = head.find(INTRO)
        start = head.find(b":", intro if intro >= 0 else 0)
        if intro < 0 or start < 0:
            return {"errors": ["no BinHex 4.0 data (no intro line followed by a colon)"]}
        handle.seek(start + 1)
        stream = ByteStream(run_length_decoded(six_bit_blocks(handle)))
        try:
            name_length = stream.exact(1, "header")[0]
            header = stream.exact(name_length + 1 + 4 + 4 + 2 + 4 + 4, "header")
            stored_crc = struct.unpack(">H", stream.exact(2, "header CRC"))[0]
            if binascii.crc_hqx(bytes((name_length,)) + header, 0) != stored_crc:
                errors.append("header CRC mismatch")
            name = header[:name_length].decode("mac_roman", "replace") or "data"
            file_type, creator = (
                header[name_length + 1 : name_length + 5],
                header[name_length + 5 : name_length + 9],
            )
            data_length, resource_length = struct.unpack_from(">II", header, name_length + 11)
            context.extraction.members = 1 + (resource_length > 0)
            context.extract(name, fork(stream, data_length, "data fork", errors), None)
            if resource_length:
                context.extract(f"{name}.rsrc", fork(stream, resource_length, "resource fork", errors), None)
        except BinHexError as error:
            errors.append(f"BinHex damaged: {error}")
            return {"errors": errors}
    metadata = {
        "name": name,
        "type": file_type.decode("mac_roman"),
        "creator": creator.decode("mac_roman"),
        "data_fork": data_length,
        "resource_fork": resource_length,
    }
    findings: Findings = {"metadata": {"encoding": {"binhex": metadata}}}
    if errors:
        findings["errors"] = errors
    return findings


ANALYZER = Analyzer(
    name="binhex", version="1", run=extract, accepts=("Text",), when=has_binhex, extracts=True
)
