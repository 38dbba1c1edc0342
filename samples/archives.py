"""Sample builders for the archive formats: small writers for RAR (stored members), CAB, CHM,
cpio, ar, deb, RPM, SZDD and KWAJ, and pycdlib for ISO 9660 / UDF images.

Each writer follows the format's published description and writes only what a reader needs,
so that the tests can hide EICAR in each format and damage any field they like.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import importlib
import io
import lzma
import zlib
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from samples.basic import EICAR, tar_bytes

# --- RAR 5 (stored members, optionally AES-256 encrypted) --------------------------------

RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"


def vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def rar5_block(
    header_type: int, flags: int, body: bytes, extra: bytes = b"", data: bytes | None = None
) -> bytes:
    fields = vint(header_type)
    flags |= (0x1 if extra else 0) | (0x2 if data is not None else 0)
    fields += vint(flags)
    if extra:
        fields += vint(len(extra))
    if data is not None:
        fields += vint(len(data))
    fields += body + extra
    sized = vint(len(fields)) + fields
    return zlib.crc32(sized).to_bytes(4, "little") + sized + (data or b"")


def rar5_keys(password: bytes, salt: bytes, lg2_count: int) -> tuple[bytes, bytes]:
    """The AES key and the password check value: PBKDF2-HMAC-SHA256, carried on 32 more rounds."""
    block = hmac.new(password, salt + b"\0\0\0\1", hashlib.sha256).digest()
    result = bytearray(block)
    rounds = 1 << lg2_count
    key = b""
    for number in range(2, rounds + 33):
        block = hmac.new(password, block, hashlib.sha256).digest()
        result = bytearray(a ^ b for a, b in zip(result, block, strict=True))
        if number == rounds:
            key = bytes(result)
    check = bytearray(8)
    for index, byte in enumerate(result):
        check[index % 8] ^= byte
    return key, bytes(check)


def rar5_bytes(
    members: dict[str, bytes],
    password: bytes | None = None,
    directories: tuple[str, ...] = (),
    header_password: bytes | None = None,
) -> bytes:
    """A RAR 5 archive of stored members; encrypted members with `password`, encrypted headers
    (the file list too, as `rar -hp` does) with `header_password`."""
    blocks = rar5_blocks(members, password, directories)
    if header_password is None:
        return RAR5_SIGNATURE + b"".join(blocks)
    salt, lg2_count = b"H" * 16, 15
    key, check = rar5_keys(header_password, salt, lg2_count)
    crypt = vint(0) + vint(0x1) + bytes([lg2_count]) + salt + check + hashlib.sha256(check).digest()[:4]
    out = bytearray(RAR5_SIGNATURE + rar5_block(4, 0, crypt))
    for block in blocks:
        header_end = block_header_size(block)
        header, data = block[:header_end], block[header_end:]
        iv = bytes([len(out) % 256]) * 16
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        out += iv + encryptor.update(header + bytes(-len(header) % 16)) + encryptor.finalize() + data
    return bytes(out)


def block_header_size(block: bytes) -> int:
    size, shift, position = 0, 0, 4
    while True:
        byte = block[position]
        size |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return position + size


def rar5_blocks(
    members: dict[str, bytes], password: bytes | None, directories: tuple[str, ...]
) -> list[bytes]:
    out = [rar5_block(1, 0, vint(0))]
    for name in directories:
        encoded = name.encode()
        body = vint(0x1) + vint(0) + vint(0o40755) + vint(0) + vint(1) + vint(len(encoded)) + encoded
        out.append(rar5_block(2, 0, body, data=b""))
    for name, content in members.items():
        encoded = name.encode()
        extra = b""
        data = content
        if password is not None:
            salt, iv, lg2_count = b"S" * 16, b"I" * 16, 15
            key, check = rar5_keys(password, salt, lg2_count)
            record = vint(1) + vint(0) + vint(0x1) + bytes([lg2_count]) + salt + iv
            record += check + hashlib.sha256(check).digest()[:4]
            extra = vint(len(record)) + record
            padded = content + b"\0" * (-len(content) % 16)
            encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            data = encryptor.update(padded) + encryptor.finalize()
        body = vint(0x4) + vint(len(content)) + vint(0o100644) + zlib.crc32(content).to_bytes(4, "little")
        body += vint(0) + vint(1) + vint(len(encoded)) + encoded
        out.append(rar5_block(2, 0, body, extra, data))
    out.append(rar5_block(5, 0, vint(0)))
    return out


# --- RAR 4 (stored members) ------------------------------------------------------------


def rar4_block(header_type: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
    rest = bytes([header_type]) + flags.to_bytes(2, "little") + (7 + len(body)).to_bytes(2, "little") + body
    return (zlib.crc32(rest) & 0xFFFF).to_bytes(2, "little") + rest + data


def rar4_bytes(members: dict[str, bytes]) -> bytes:
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += rar4_block(0x73, 0, bytes(6))
    for name, content in members.items():
        encoded = name.encode()
        body = len(content).to_bytes(4, "little") + len(content).to_bytes(4, "little") + b"\x03"
        body += zlib.crc32(content).to_bytes(4, "little") + (0x5A210000).to_bytes(4, "little")
        body += bytes([29, 0x30]) + len(encoded).to_bytes(2, "little") + (0o100644).to_bytes(4, "little")
        out += rar4_block(0x74, 0x8000, body + encoded, content)
    out += rar4_block(0x7B, 0x4000, b"")
    return bytes(out)


# --- Microsoft Cabinet -----------------------------------------------------------------


def cab_bytes(members: dict[str, bytes], mszip: bool = True, declared: dict[str, int] | None = None) -> bytes:
    """A one-folder CAB; `declared` overrides the size a file's entry claims."""
    stream = b"".join(members.values())
    blocks = []
    history = b""
    for start in range(0, max(1, len(stream)), 32768):
        chunk = stream[start : start + 32768]
        if mszip:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=history) if history else None
            compressor = compressor or zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = b"CK" + compressor.compress(chunk) + compressor.flush()
            history = chunk
        else:
            packed = chunk
        blocks.append(
            b"\0\0\0\0" + len(packed).to_bytes(2, "little") + len(chunk).to_bytes(2, "little") + packed
        )
    entries = bytearray()
    offset = 0
    for name, content in members.items():
        size = (declared or {}).get(name, len(content))
        entries += size.to_bytes(4, "little") + offset.to_bytes(4, "little") + bytes(2)
        entries += (
            (0x5A21).to_bytes(2, "little") + bytes(2) + (0x20).to_bytes(2, "little") + name.encode() + b"\0"
        )
        offset += len(content)
    files_offset = 36 + 8
    data_offset = files_offset + len(entries)
    total = data_offset + sum(len(block) for block in blocks)
    header = b"MSCF" + bytes(4) + total.to_bytes(4, "little") + bytes(4) + files_offset.to_bytes(4, "little")
    header += bytes(4) + bytes([3, 1]) + (1).to_bytes(2, "little") + len(members).to_bytes(2, "little")
    header += bytes(2) + (0x1234).to_bytes(2, "little") + bytes(2)
    folder = (
        data_offset.to_bytes(4, "little")
        + len(blocks).to_bytes(2, "little")
        + (int(mszip)).to_bytes(2, "little")
    )
    return header + folder + bytes(entries) + b"".join(blocks)


# --- Compiled HTML Help (ITSF v3, one uncompressed section) ------------------------------


def encint(value: int) -> bytes:
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def chm_bytes(members: dict[str, bytes]) -> bytes:
    names = "Uncompressed".encode("utf-16-le")
    name_list = (
        (16).to_bytes(2, "little") + (1).to_bytes(2, "little") + (12).to_bytes(2, "little") + names + bytes(2)
    )
    content = bytearray(name_list)
    listing = [("::DataSpace/NameList", 0, len(name_list))]
    for name, data in members.items():
        listing.append((name, len(content), len(data)))
        content += data
    entries = b"".join(
        encint(len(name.encode())) + name.encode() + encint(0) + encint(offset) + encint(length)
        for name, offset, length in listing
    )
    chunk_size = 0x1000
    free = chunk_size - 20 - len(entries) - 2
    chunk = b"PMGL" + free.to_bytes(4, "little") + bytes(4) + b"\xff" * 8 + entries
    chunk += bytes(free) + len(listing).to_bytes(2, "little")
    guid = bytes.fromhex("6a92025d2e21d0119df900a0c922e6ec")
    directory = b"ITSP" + b"".join(
        value.to_bytes(4, "little")
        for value in (1, 0x54, 0x0A, chunk_size, 2, 1, 0xFFFFFFFF, 0, 0, 0xFFFFFFFF, 1, 0x409)
    )
    directory += guid + (0x54).to_bytes(4, "little") + b"\xff" * 12
    size_section = 0x60
    directory_offset = size_section + 0x18
    content_offset = directory_offset + len(directory) + len(chunk)
    total = content_offset + len(content)
    header = b"ITSF" + b"".join(value.to_bytes(4, "little") for value in (3, 0x60, 1, 0, 0x409))
    header += bytes(32)
    header += size_section.to_bytes(8, "little") + (0x18).to_bytes(8, "little")
    header += directory_offset.to_bytes(8, "little") + (len(directory) + len(chunk)).to_bytes(8, "little")
    header += content_offset.to_bytes(8, "little")
    size_header = b"\xfe\x01\0\0" + bytes(4) + total.to_bytes(8, "little") + bytes(8)
    return header + size_header + directory + chunk + bytes(content)


# --- ISO 9660 and UDF (pycdlib) ----------------------------------------------------------


def iso_bytes(members: dict[str, bytes], udf: bool = False) -> bytes:
    import pycdlib

    image = pycdlib.PyCdlib()
    image.new(interchange_level=3, joliet=3, rock_ridge="1.09", udf="2.60" if udf else None)
    iso_dirs: dict[str, str] = {"": ""}  # path in the image: its 8.3 ISO 9660 name
    for number, (path, data) in enumerate(members.items()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in iso_dirs:
                continue
            iso_dir = iso_dirs[directory] = f"{iso_dirs['/'.join(parts[: depth - 1])]}/D{len(iso_dirs)}"
            image.add_directory(
                iso_dir,
                rr_name=parts[depth - 1],
                joliet_path=f"/{directory}",
                udf_path=f"/{directory}" if udf else None,
            )
        image.add_fp(
            io.BytesIO(data),
            len(data),
            f"{iso_dirs['/'.join(parts[:-1])]}/F{number}.;1",
            rr_name=parts[-1],
            joliet_path=f"/{path}",
            udf_path=f"/{path}" if udf else None,
        )
    out = io.BytesIO()
    image.write_fp(out)
    image.close()
    return out.getvalue()


# --- cpio ------------------------------------------------------------------------------

REGULAR_MODE = 0o100644


def cpio_bytes(members: dict[str, bytes], flavour: str = "newc", trailer: bool = True) -> bytes:
    """A cpio archive in the `newc`, `crc`, `odc`, `bin-le` or `bin-be` flavour."""
    out = bytearray()
    entries = [*((name, data, REGULAR_MODE) for name, data in members.items())]
    if trailer:
        entries.append(("TRAILER!!!", b"", 0))
    for number, (name, data, mode) in enumerate(entries, start=1):
        encoded = name.encode() + b"\0"
        if flavour in ("newc", "crc"):
            check = sum(data) & 0xFFFFFFFF if flavour == "crc" else 0
            values = (number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), check)
            header = (b"070701" if flavour == "newc" else b"070702") + b"".join(b"%08X" % v for v in values)
            out += header + encoded + bytes(-(len(header) + len(encoded)) % 4)
            out += data + bytes(-len(data) % 4)
        elif flavour == "odc":
            out += b"070707" + b"%06o%06o%06o%06o%06o%06o%06o%011o%06o%011o" % (
                0,
                number,
                mode,
                0,
                0,
                1,
                0,
                0,
                len(encoded),
                len(data),
            )
            out += encoded + data
        else:
            order = "little" if flavour == "bin-le" else "big"
            words = (
                0o070707,
                0,
                number,
                mode,
                0,
                0,
                1,
                0,
                0,
                0,
                len(encoded),
                len(data) >> 16,
                len(data) & 0xFFFF,
            )
            out += b"".join(word.to_bytes(2, order) for word in words)  # type: ignore[arg-type]
            out += encoded + bytes(len(encoded) % 2) + data + bytes(len(data) % 2)
    return bytes(out)


# --- ar and deb --------------------------------------------------------------------------


def ar_member(name: bytes, data: bytes) -> bytes:
    header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
    header += str(len(data)).encode().ljust(10) + b"`\n"
    return header + data + (b"\n" if len(data) % 2 else b"")


def ar_bytes(members: dict[str, bytes], style: str = "gnu") -> bytes:
    """An ar archive; names longer than 15 bytes go in a `//` table (GNU) or before the data (BSD)."""
    out = bytearray(b"!<arch>\n")
    table = bytearray()
    body = bytearray()
    for name, data in members.items():
        encoded = name.encode()
        if len(encoded) <= 15:
            body += ar_member(encoded + (b"/" if style == "gnu" else b""), data)
        elif style == "gnu":
            body += ar_member(b"/%d" % len(table), data)
            table += encoded + b"/\n"
        else:
            body += ar_member(b"#1/%d" % len(encoded), encoded + data)
    if table:
        out += ar_member(b"//", bytes(table))
    return bytes(out + body)


def deb_bytes(files: dict[str, bytes]) -> bytes:
    control = tar_bytes({"./control": b"Package: sample\nVersion: 1.0\nArchitecture: all\n"})
    data = tar_bytes({f"./{name}": content for name, content in files.items()})
    return ar_bytes(
        {
            "debian-binary": b"2.0\n",
            "control.tar.xz": lzma.compress(control),
            "data.tar.xz": lzma.compress(data),
        }
    )


# --- RPM -------------------------------------------------------------------------------


def rpm_header(tags: dict[int, str]) -> bytes:
    index = bytearray()
    store = bytearray()
    for tag, value in sorted(tags.items()):
        index += (
            tag.to_bytes(4, "big")
            + (6).to_bytes(4, "big")
            + len(store).to_bytes(4, "big")
            + (1).to_bytes(4, "big")
        )
        store += value.encode() + b"\0"
    intro = b"\x8e\xad\xe8\x01" + bytes(4) + (len(tags)).to_bytes(4, "big") + len(store).to_bytes(4, "big")
    return intro + bytes(index) + bytes(store)


def rpm_bytes(members: dict[str, bytes], compression: str = "gzip") -> bytes:
    lead = b"\xed\xab\xee\xdb\x03\x00" + bytes(4) + b"sample-1.0-1".ljust(66, b"\0") + (1).to_bytes(2, "big")
    lead += (5).to_bytes(2, "big") + bytes(16)
    signature = rpm_header({})
    header = rpm_header(
        {1000: "sample", 1001: "1.0", 1002: "1", 1022: "noarch", 1124: "cpio", 1125: compression}
    )
    payload = cpio_bytes({f"./{name}": data for name, data in members.items()})
    packers: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: gzip.compress(data, mtime=0),
        "xz": lzma.compress,
        "zstd": zstd_compress,
    }
    return lead + signature + bytes(-len(signature) % 8) + header + packers[compression](payload)


def zstd_compress(data: bytes) -> bytes:
    try:
        zstd = importlib.import_module("compression.zstd")  # Python 3.14
    except ImportError:
        zstd = importlib.import_module("backports.zstd")
    return bytes(zstd.compress(data))


# --- SZDD and KWAJ -----------------------------------------------------------------------


def lzss_compress(data: bytes) -> bytes:
    """SZDD's LZSS, greedy: the longest match (3 to 18 bytes) in the window, else a literal."""
    window = bytearray(b" " * 4096)
    position = 4096 - 16
    out = bytearray()
    index = 0
    while index < len(data):
        flags, group = 0, bytearray()
        for bit in range(8):
            if index >= len(data):
                break
            best, best_length = 0, 0
            for length in range(min(18, len(data) - index), 2, -1):
                found = bytes(window).find(data[index : index + length])
                if found >= 0 and all(
                    (found + step) % 4096 != (position + step) % 4096 for step in range(length)
                ):
                    best, best_length = found, length
                    break
            if best_length:
                group += bytes([best & 0xFF, (best >> 4) & 0xF0 | (best_length - 3)])
                chunk = data[index : index + best_length]
            else:
                flags |= 1 << bit
                group.append(data[index])
                chunk = data[index : index + 1]
            for byte in chunk:
                window[position] = byte
                position = (position + 1) % 4096
            index += len(chunk)
        out.append(flags)
        out += group
    return bytes(out)


def szdd_bytes(data: bytes, missing: bytes = b"m") -> bytes:
    return b"SZDD\x88\xf0\x27\x33A" + missing + len(data).to_bytes(4, "little") + lzss_compress(data)


def kwaj_bytes(data: bytes, method: int = 2, name: bytes | None = b"EICAR", suffix: bytes = b"COM") -> bytes:
    flags = 0x01 | (0x18 if name is not None else 0)
    extra = len(data).to_bytes(4, "little") + ((name + b"\0" + suffix + b"\0") if name is not None else b"")
    if method == 0:
        body = data
    elif method == 1:
        body = bytes(byte ^ 0xFF for byte in data)
    elif method == 2:
        body = lzss_compress(data)
    else:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = b"CK" + deflate.compress(data) + deflate.flush()
        body = len(block).to_bytes(2, "little") + block + bytes(2)
    offset = 14 + len(extra)
    header = b"KWAJ\x88\xf0\x27\xd1" + method.to_bytes(2, "little") + offset.to_bytes(2, "little")
    return header + flags.to_bytes(2, "little") + extra + body


IDENTIFICATION_SAMPLES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("Archive", "RAR", lambda: rar5_bytes({"a.txt": b"hello"})),
    ("Archive", "CAB", lambda: cab_bytes({"a.txt": b"hello"})),
    ("Archive", "CHM", lambda: chm_bytes({"/a.htm": b"<html></html>"})),
    ("Archive", "UDF", lambda: iso_bytes({"a.txt": b"hello"}, udf=True)),
    ("Archive", "ISO", lambda: iso_bytes({"a.txt": b"hello"})),
    ("Archive", "RPM", lambda: rpm_bytes({"a.txt": b"hello"})),
    ("Archive", "DEB", lambda: deb_bytes({"a.txt": b"hello"})),
    ("Archive", "AR", lambda: ar_bytes({"a.o": b"\x7fELF"})),
    ("Archive", "SZDD", lambda: szdd_bytes(EICAR)),
    ("Archive", "KWAJ", lambda: kwaj_bytes(EICAR)),
    ("Archive", "CPIO", lambda: cpio_bytes({"a.txt": b"hello"})),
]
