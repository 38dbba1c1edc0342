"""MS-DOS COMPRESS.EXE formats: SZDD (LZSS) and KWAJ (stored, XOR, LZSS and MSZIP methods).

The files `setup.ex_` and `driver.sy_` of old installers and of droppers imitating them.
Both are small, documented formats decoded here one block at a time. KWAJ's method 3 (LZ
with Huffman codes) is rare and is reported as unsupported rather than decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from worker.analysis.context import BLOCK, Analyzer, FileContext, Findings

SZDD_MAGIC = b"SZDD\x88\xf0\x27\x33"
KWAJ_MAGIC = b"KWAJ\x88\xf0\x27\xd1"
WINDOW = 4096
OUTPUT_BLOCK = 64 * 1024


class CompressError(ValueError):
    """The stream is damaged or uses a method not decoded here."""


def input_bytes(stream: IO[bytes]) -> Iterator[int]:
    while block := stream.read(BLOCK):
        yield from block


def lzss(stream: IO[bytes]) -> Iterator[bytes]:
    """SZDD's LZSS: a 4 KiB window of spaces, written from 4080, flag bits least significant first."""
    window = bytearray(b" " * WINDOW)
    position = WINDOW - 16
    out = bytearray()
    source = input_bytes(stream)
    for flags in source:
        for bit in range(8):
            if flags >> bit & 1:
                if (byte := next(source, None)) is None:
                    break
                out.append(byte)
                window[position] = byte
                position = (position + 1) % WINDOW
                continue
            low, high = next(source, None), next(source, None)
            if low is None:
                break
            if high is None:
                raise CompressError("truncated in a back-reference")
            start = low | (high & 0xF0) << 4
            for step in range((high & 0x0F) + 3):
                byte = window[(start + step) % WINDOW]
                out.append(byte)
                window[position] = byte
                position = (position + 1) % WINDOW
        if len(out) >= OUTPUT_BLOCK:
            yield bytes(out)
            out.clear()
    if out:
        yield bytes(out)


def stored(stream: IO[bytes], xor: int = 0) -> Iterator[bytes]:
    while block := stream.read(BLOCK):
        yield bytes(byte ^ xor for byte in block) if xor else block


def kwaj_mszip(stream: IO[bytes]) -> Iterator[bytes]:
    """KWAJ's MSZIP: blocks of a length, "CK" and deflate data, each seeing the one before."""
    history = b""
    while len(length := stream.read(2)) == 2 and (size := int.from_bytes(length, "little")):
        block = stream.read(size)
        if len(block) != size or block[:2] != b"CK":
            raise CompressError("damaged MSZIP block")
        inflater = zlib.decompressobj(-zlib.MAX_WBITS, zdict=history[-32768:])
        try:
            output = inflater.decompress(block[2:]) + inflater.flush()
        except zlib.error as error:
            raise CompressError(f"damaged MSZIP block: {error}") from None
        history = output
        yield output


def szdd(context: FileContext, stream: IO[bytes]) -> tuple[str, Iterator[bytes]]:
    header = stream.read(14)
    if len(header) < 14 or header[8:9] != b"A":
        raise CompressError("not an SZDD stream of method A")
    name = PurePosixPath(context.file_name or "data").name
    missing = chr(header[9]) if 32 < header[9] < 127 else ""
    if name.endswith("_") and missing:
        name = name[:-1] + missing
    elif name.endswith("_"):
        name = name[:-1]
    else:
        name += ".decompressed"
    return name, lzss(stream)


def kwaj(context: FileContext, stream: IO[bytes]) -> tuple[str, Iterator[bytes]]:
    header = stream.read(14)
    if len(header) < 14:
        raise CompressError("truncated KWAJ header")
    method = int.from_bytes(header[8:10], "little")
    data_offset = int.from_bytes(header[10:12], "little")
    flags = int.from_bytes(header[12:14], "little")
    extra = stream.read(max(0, data_offset - 14))
    name = kwaj_name(extra, flags) or PurePosixPath(context.file_name or "data").stem or "data"
    stream.seek(data_offset)
    decoders = {
        0: lambda: stored(stream),
        1: lambda: stored(stream, 0xFF),
        2: lambda: lzss(stream),
        4: lambda: kwaj_mszip(stream),
    }
    if method not in decoders:
        raise CompressError(f"KWAJ method {method} is not supported")
    return name, decoders[method]()


def kwaj_name(extra: bytes, flags: int) -> str:
    """The original name that the optional KWAJ headers may carry."""
    position = 4 * bool(flags & 0x01) + 2 * bool(flags & 0x02)
    if flags & 0x04:
        position += 2 + int.from_bytes(extra[position : position + 2], "little")
    stem = suffix = ""
    if flags & 0x08:
        end = extra.find(b"\0", position, position + 9)
        stem = extra[position : end if end >= 0 else position + 8].decode("latin-1")
        position = end + 1 if end >= 0 else position + 8
    if flags & 0x10:
        end = extra.find(b"\0", position, position + 4)
        suffix = extra[position : end if end >= 0 else position + 3].decode("latin-1")
    name = stem + (f".{suffix}" if suffix else "")
    return name if name.isprintable() else ""


def extract(context: FileContext) -> Findings:
    with context.path.open("rb") as stream:
        magic = stream.read(8)
        stream.seek(0)
        try:
            name, output = (szdd if magic == SZDD_MAGIC else kwaj)(context, stream)
            context.extraction.members = 1
            context.extract(name, output)
        except CompressError as error:
            return {"errors": [f"{magic[:4].decode('latin-1')}: {error}"]}
    return {}


ANALYZER = Analyzer(
    name="ms-compress", version="1", run=extract, accepts=("Archive/SZDD", "Archive/KWAJ"), extracts=True
)
