"""ZIP extractor (pyzipper): stored, deflated, Deflate64, bzip2, LZMA, shrunk and imploded members.

pyzipper rather than zipfile because it decrypts WinZip AES, the encryption real malware
archives use. The central directory is read one entry at a time (`zipdirectory.py`) and
members one block at a time through the extraction budget, so neither a huge directory nor
a lying header gets past the limits. pyzipper inflates with a bound on each
block's output, but decodes bzip2 and LZMA without one (a few KiB of bzip2 can make
gigabytes at once), and knows no Deflate64: for those methods pyzipper only decrypts, and
the data is decoded here with a bound on every block (Deflate64 by inflate64, already
brought by py7zr; PKZIP 1.x shrink and implode by `decoders.pkzip1`). Encryption: ZipCrypto
and WinZip AES, whatever the method. Reduced members (PKZIP 1.x methods 2 to 5) are
reported as skipped, unsupported.
"""

from __future__ import annotations

import bz2
import copy
import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import inflate64
import pyzipper
import pyzipper.zipfile_aes

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.decoders import pkzip1
from worker.analysis.extractors.zipdirectory import StreamingZipFile

# pyzipper raises its own BadZipFile, not zipfile's.
BAD_ZIP = (zipfile.BadZipFile, pyzipper.BadZipFile)


SHRINK, IMPLODE, DEFLATE64, BZIP2, LZMA = 1, 6, 9, 12, 14
OUTPUT_BLOCK = 1024 * 1024
INPUT_BLOCK = 64 * 1024
# inflate64 has no output bound: a Deflate64 match of 65538 bytes costs as little as 18
# bits, so 64 input bytes can give at most about 1.9 MiB.
DEFLATE64_SLICE = 64
AES_V2 = 2  # WinZip AES version 2 stores no CRC (the HMAC authenticates the data)


class RawMember(pyzipper.zipfile_aes.AESZipExtFile):
    """A member's stored bytes, decrypted but not decoded; its CRC is checked after decoding."""

    def check_crc(self) -> None:
        return None


def raw_member(archive: pyzipper.AESZipFile, info: zipfile.ZipInfo, password: bytes) -> Any:
    raw = copy.copy(info)
    raw.compress_type = zipfile.ZIP_STORED
    raw.file_size = info.compress_size  # read every stored byte; decoding decides the length
    archive.zipextfile_cls = RawMember
    try:
        return archive.open(raw, pwd=password or None)
    finally:
        del archive.zipextfile_cls


def bounded(
    decompress: Callable[[bytes, int], bytes],
    finished: Callable[[], bool],
    read: Callable[[int], bytes],
    needs_input: Callable[[], bool],
    size: int,
) -> Iterator[bytes]:
    produced = 0
    while not finished():
        data = read(INPUT_BLOCK) if needs_input() else b""
        if needs_input() and not data:
            if produced >= size:  # LZMA without an end marker stops at the stated size
                return
            raise EOFError("compressed data ends early")
        block = decompress(data, OUTPUT_BLOCK)
        produced += len(block)
        if block:
            yield block


def decode_bzip2(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    decompressor = bz2.BZ2Decompressor()
    yield from bounded(
        decompressor.decompress, lambda: decompressor.eof, read, lambda: decompressor.needs_input, size
    )


def decode_lzma(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    # APPNOTE 5.8.8: version (2 bytes), properties size (2), then LZMA1 properties.
    header = read(4)
    if len(header) < 4:
        raise EOFError("LZMA header truncated")
    (properties_size,) = struct.unpack_from("<H", header, 2)
    properties = read(properties_size)
    filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, properties)]  # type: ignore[attr-defined]
    decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
    yield from bounded(
        decompressor.decompress, lambda: decompressor.eof, read, lambda: decompressor.needs_input, size
    )


def decode_deflate64(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    inflater = inflate64.Inflater()
    while not inflater.eof:
        data = read(INPUT_BLOCK)
        if not data:
            raise EOFError("compressed data ends early")
        for start in range(0, len(data), DEFLATE64_SLICE):
            if block := inflater.inflate(data[start : start + DEFLATE64_SLICE]):
                yield block
            if inflater.eof:
                break


Reader = Callable[[int], bytes]
DECODERS: dict[int, Callable[[Reader, zipfile.ZipInfo], Iterator[bytes]]] = {
    SHRINK: lambda read, info: pkzip1.unshrink(read, info.file_size),
    IMPLODE: lambda read, info: pkzip1.explode(read, info.file_size, info.flag_bits),
    DEFLATE64: lambda read, info: decode_deflate64(read, info.file_size),
    BZIP2: lambda read, info: decode_bzip2(read, info.file_size),
    LZMA: lambda read, info: decode_lzma(read, info.file_size),
}


def checked(info: zipfile.ZipInfo, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The decoded blocks, then a BadZipFile if the size or the CRC is not the header's."""
    crc = size = 0
    for block in blocks:
        crc = zlib.crc32(block, crc)
        size += len(block)
        yield block
    if size != info.file_size:
        raise zipfile.BadZipFile(f"{size} bytes decoded, the header says {info.file_size}")
    if getattr(info, "wz_aes_version", None) != AES_V2 and crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


def extract_member(
    context: FileContext, archive: pyzipper.AESZipFile, info: zipfile.ZipInfo, password: bytes, packed: int
) -> None:
    decoder = DECODERS.get(info.compress_type)
    if decoder is None:
        with archive.open(info, pwd=password or None) as member:
            context.extract(info.filename, member, packed)
        return
    with raw_member(archive, info, password) as member:
        context.extract(info.filename, checked(info, decoder(member.read, info)), packed)


def is_zip(context: FileContext) -> bool:
    return context.head.startswith(b"PK\x03\x04")


def extract(context: FileContext) -> Findings:
    hits: list[HeuristicHit] = []
    locked: list[str] = []
    with StreamingZipFile(context.path) as archive:
        for info in archive.entries():
            if info.is_dir():
                continue
            context.extraction.members += 1
            # zipfile reads at most compress_size bytes, and never more than the file has.
            packed = min(info.compress_size, context.size)
            encrypted = bool(info.flag_bits & 0x1)
            candidates = context.passwords() if encrypted else [(b"", "")]
            for number, (password, source) in enumerate(candidates):
                context.check_time(f"trying passwords on {info.filename[:100]}")
                try:
                    extract_member(context, archive, info, password, packed)
                except NotImplementedError as error:  # a RuntimeError: caught first
                    context.skip(info.filename, f"unsupported: {error}")
                    break
                except (
                    RuntimeError,
                    *BAD_ZIP,
                    zlib.error,
                    lzma.LZMAError,
                    OSError,
                    ValueError,
                    EOFError,
                ) as error:
                    if encrypted and number + 1 < len(candidates):
                        continue  # wrong password: try the next one
                    reason = "no password matched" if encrypted else f"{type(error).__name__}: {error}"
                    context.skip(info.filename, reason)
                    if encrypted:
                        locked.append(info.filename)
                    break
                if encrypted:
                    context.extraction.password_source = source
                break
    if context.extraction.password_source:
        hits.append(hit("archive:encrypted", context.extraction.password_source))
    if locked:
        hits.append(hit("archive:password-unknown", *locked[:5]))
    findings: Findings = {"heuristics": hits}
    if locked:
        findings["story"] = [
            f"{len(locked)} encrypted member(s) could not be opened with any known password."
        ]
    return findings


# OpenDocument packages have their own extractor (officepackage.py), which knows which
# parts the document encrypts.
OPENDOCUMENT_SUBTYPES = ("ODT", "ODS", "ODP", "ODF")


def is_plain_zip(context: FileContext) -> bool:
    """Every ZIP, whatever it is called once identified (OOXML, JAR, APK, EPUB, XPS, NuGet,
    wheels... hide files the same way), but OpenDocument."""
    opendocument = context.is_a("Document", *OPENDOCUMENT_SUBTYPES)
    return is_zip(context) and not opendocument


ANALYZER = Analyzer(name="zip", version="5", run=extract, when=is_plain_zip, extracts=True)
