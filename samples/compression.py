"""Samples for the compression formats: built here in Python where a library or a few lines can, else shipped.

The shipped ones (ARJ and LHA archives made with the Debian tools) are in
samples/files/compression/, and its README says how each was made.
"""

from __future__ import annotations

import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import inflate64
import lz4.frame

from samples.basic import tar_bytes, write_raw_member
from worker.analysis.decoders.streams import zstd

SAMPLES = Path(__file__).resolve().parent / "files" / "compression"
TEXT = b"The quick brown fox jumps over the lazy dog.\n" * 40


def shipped(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# --- Single streams ------------------------------------------------------------------------


def zstd_bytes(data: bytes) -> bytes:
    return zstd.compress(data)


def lz4_bytes(data: bytes) -> bytes:
    return lz4.frame.compress(data)


def lzma_alone_bytes(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def compress_z_bytes(data: bytes, max_bits: int = 16) -> bytes:
    """Unix `compress` output: LZW, codes widened (after the group padding) as ncompress does."""
    out = bytearray(b"\x1f\x9d" + bytes([0x80 | max_bits]))
    accumulator = held = codes_in_group = 0
    bits = 9
    table = {bytes([byte]): byte for byte in range(256)}
    free = 257

    def emit(code: int) -> None:
        nonlocal accumulator, held, codes_in_group
        accumulator |= code << held
        held += bits
        codes_in_group += 1
        while held >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            held -= 8

    word = b""
    for byte in data:
        candidate = word + bytes([byte])
        if candidate in table:
            word = candidate
            continue
        emit(table[word])
        if free < 1 << max_bits:
            table[candidate] = free
            free += 1
        if free > 1 << bits and bits < max_bits:
            for _ in range((8 - codes_in_group % 8) % 8):
                emit(0)
            bits, codes_in_group = bits + 1, 0
        word = bytes([byte])
    if word:
        emit(table[word])
    if held:
        out.append(accumulator & 0xFF)
    return bytes(out)


def repeated_frames(frame: bytes, count: int) -> bytes:
    """A bomb without compressing gigabytes: one compressed frame of zeros, concatenated."""
    return frame * count


def zstd_bomb(mib: int = 1024) -> bytes:
    return repeated_frames(zstd.compress(bytes(1024 * 1024)), mib)


def lz4_bomb(mib: int = 1024) -> bytes:
    return repeated_frames(lz4.frame.compress(bytes(1024 * 1024)), mib)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "ZSTD": zstd_bytes,
    "LZ4": lz4_bytes,
    "LZMA": lzma_alone_bytes,
    "COMPRESS": compress_z_bytes,
}
SUFFIXES = {"ZSTD": ".zst", "LZ4": ".lz4", "LZMA": ".lzma", "COMPRESS": ".Z"}


# --- ZIP methods -------------------------------------------------------------------------


def zip_with_method(members: dict[str, bytes], method: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def deflate64_zip(members: dict[str, bytes]) -> bytes:
    """A zip of Deflate64 (method 9) members, compressed by inflate64's Deflater."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            deflater = inflate64.Deflater()
            stream = deflater.deflate(data) + deflater.flush()
            info = zipfile.ZipInfo(name)
            info.compress_type = 9
            write_raw_member(archive, info, stream, zlib.crc32(data), len(data))
    return buffer.getvalue()


# --- TAR flavours --------------------------------------------------------------------------


def tar_format(members: dict[str, bytes], tar_format: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def v7_header(name: str, size: int) -> bytes:
    """A pre-POSIX (Unix v7) tar header: no magic, name, mode, ids, size, mtime and checksum only."""
    header = bytearray(512)
    header[0:100] = name.encode().ljust(100, b"\0")
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % 0
    header[148:156] = b" " * 8
    header[156] = ord("0")
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def v7_tar(members: dict[str, bytes]) -> bytes:
    out = bytearray()
    for name, data in members.items():
        out += v7_header(name, len(data)) + data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


def gnu_sparse_tar(name: str, data_at: int, data: bytes, total: int) -> bytes:
    """A GNU sparse member (type S, old format): `data` at offset `data_at` of a `total`-byte file."""
    header = bytearray(tarfile.TarInfo(name).tobuf(tarfile.GNU_FORMAT))
    header[156] = ord("S")
    header[124:136] = b"%011o\0" % len(data)  # what is stored
    header[386:398] = b"%011o\0" % data_at  # first sparse entry: offset...
    header[398:410] = b"%011o\0" % len(data)  # ...and size
    header[483:495] = b"%011o\0" % total  # real size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data + bytes(-len(data) % 512) + bytes(1024)


def tar_with_corrupt_middle_header(before: dict[str, bytes], after: dict[str, bytes]) -> bytes:
    good = tar_format(before, tarfile.USTAR_FORMAT)
    good = good[: len(good) - 1024 * 10 + 1024 * 10]  # keep tarfile's record padding as written
    end = good.rstrip(b"\0")
    end += bytes(-len(end) % 512)
    rest = bytearray(tar_format(after, tarfile.USTAR_FORMAT))
    rest[148:156] = b"9999999\0"  # the next header's checksum no longer holds
    return bytes(end + rest)


def compressed_tar(kind: str, members: dict[str, bytes]) -> bytes:
    return COMPRESSORS[kind](tar_bytes(members))


# --- ARJ stored, built here (compressed ARJ members are shipped) ----------------------------


def arj_header(basic: bytes) -> bytes:
    return (
        b"\x60\xea" + struct.pack("<H", len(basic)) + basic + struct.pack("<I", zlib.crc32(basic)) + b"\0\0"
    )


def arj_stored(members: dict[str, bytes]) -> bytes:
    main = bytes([30, 11, 1, 2, 0x10, 0, 2, 0]) + bytes(22) + b"sample.arj\0\0"
    out = bytearray(arj_header(main))
    for name, data in members.items():
        fields = bytes([30, 11, 1, 2, 0x10, 0, 0, 0]) + struct.pack(
            "<IIIIHHBB", 0, len(data), len(data), zlib.crc32(data), 0, 0o644, 0, 0
        )
        out += arj_header(fields + name.encode() + b"\0\0") + data
    return bytes(out + b"\x60\xea\0\0")


# --- LZH stored (-lh0-), built here at each header level ----------------------------------


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def lzh_stored(members: dict[str, bytes], level: int = 0) -> bytes:
    out = bytearray()
    for name, data in members.items():
        raw_name, crc = name.encode(), crc16(data)
        if level == 0:
            body = b"-lh0-" + struct.pack("<IIIBBB", len(data), len(data), 0, 0x20, 0, len(raw_name))
            body += raw_name + struct.pack("<H", crc)
            out += bytes([len(body), sum(body) & 0xFF]) + body + data
        elif level == 1:
            body = b"-lh0-" + struct.pack("<IIIBBB", len(data), len(data), 0, 0x20, 1, len(raw_name))
            body += raw_name + struct.pack("<HBH", crc, ord("U"), 0)
            out += bytes([len(body), sum(body) & 0xFF]) + body + data
        else:
            # The base header's last field is the first extended header's size: type, name, next size.
            extended = struct.pack("<HB", 1 + len(raw_name) + 2, 1) + raw_name
            size = 24 + len(extended) + 2
            out += (
                struct.pack("<H", size)
                + b"-lh0-"
                + struct.pack("<IIIBBHB", len(data), len(data), 0, 0, 2, crc, ord("U"))
            )
            out += extended + b"\0\0" + data
    return bytes(out + b"\0")


IDENTIFICATION_SAMPLES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("Archive", "ZSTD", lambda: zstd_bytes(TEXT)),
    ("Archive", "LZ4", lambda: lz4_bytes(TEXT)),
    ("Archive", "LZMA", lambda: lzma_alone_bytes(TEXT)),
    ("Archive", "COMPRESS", lambda: compress_z_bytes(TEXT)),
    ("Archive", "ARJ", lambda: arj_stored({"readme.txt": TEXT})),
    ("Archive", "LZH", lambda: lzh_stored({"readme.txt": TEXT})),
]
