"""Executable samples built by the tests: minimal PE files (sections, resources, overlay), UPX-marked
and UPX-packed executables, PyInstaller CArchives and compiled AutoIt scripts."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

from samples.basic import EICAR

FILE_ALIGNMENT = 0x200
SECTION_ALIGNMENT = 0x1000
RESOURCE_DIRECTORY = 2
SAMPLES_DIR = Path(__file__).resolve().parent / "files" / "executables"


def align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def resource_section(resources: dict[tuple[int, int], bytes], rva: int) -> bytes:
    """A .rsrc section: type -> name -> language (0x409) -> data, for integer type and name ids."""
    types: dict[int, dict[int, bytes]] = {}
    for (type_id, name_id), data in sorted(resources.items()):
        types.setdefault(type_id, {})[name_id] = data

    def directory(ids: list[int]) -> tuple[bytes, int]:
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, len(ids)), 16 + 8 * len(ids)

    # Layout: root, one directory per type, one per (type, name), data entries, then data.
    root_size = 16 + 8 * len(types)
    type_offsets, offset = {}, root_size
    for type_id, names in types.items():
        type_offsets[type_id] = offset
        offset += 16 + 8 * len(names)
    name_offsets = {}
    for type_id, names in types.items():
        for name_id in names:
            name_offsets[(type_id, name_id)] = offset
            offset += 16 + 8
    entry_offsets = {}
    for key in name_offsets:
        entry_offsets[key] = offset
        offset += 16
    data_offsets = {}
    for key in name_offsets:
        data_offsets[key] = offset
        offset = align(offset + len(types[key[0]][key[1]]), 8)
    out = bytearray(offset)
    header, _ = directory(list(types))
    out[0:16] = header
    for number, type_id in enumerate(types):
        entry = struct.pack("<II", type_id, 0x80000000 | type_offsets[type_id])
        out[16 + 8 * number : 24 + 8 * number] = entry
        names = types[type_id]
        base = type_offsets[type_id]
        out[base : base + 16] = directory(list(names))[0]
        for index, name_id in enumerate(names):
            target = 0x80000000 | name_offsets[(type_id, name_id)]
            out[base + 16 + 8 * index : base + 24 + 8 * index] = struct.pack("<II", name_id, target)
    for key, base in name_offsets.items():
        out[base : base + 16] = directory([0x409])[0]
        out[base + 16 : base + 24] = struct.pack("<II", 0x409, entry_offsets[key])
        data = types[key[0]][key[1]]
        out[entry_offsets[key] : entry_offsets[key] + 16] = struct.pack(
            "<IIII", rva + data_offsets[key], len(data), 0, 0
        )
        out[data_offsets[key] : data_offsets[key] + len(data)] = data
    return bytes(out)


def minimal_pe(
    sections: list[tuple[bytes, bytes]] | None = None,
    resources: dict[tuple[int, int], bytes] | None = None,
    overlay: bytes = b"",
) -> bytes:
    """A 32-bit PE (i386 exe) with the given (name, data) sections, a .rsrc and an overlay."""
    sections = list(sections or [(b".text", b"\xc3" + b"\x90" * 15)])
    count = len(sections) + (1 if resources else 0)
    headers_size = align(0x40 + 4 + 20 + 0xE0 + 40 * count, FILE_ALIGNMENT)
    rva, raw = SECTION_ALIGNMENT, headers_size
    table, bodies = bytearray(), bytearray()
    directories = [(0, 0)] * 16
    layout = []
    for name, data in sections:
        layout.append((name, data, rva, raw))
        rva += align(max(len(data), 1), SECTION_ALIGNMENT)
        raw += align(len(data), FILE_ALIGNMENT)
    if resources:
        data = resource_section(resources, rva)
        layout.append((b".rsrc", data, rva, raw))
        directories[RESOURCE_DIRECTORY] = (rva, len(data))
        rva += align(len(data), SECTION_ALIGNMENT)
        raw += align(len(data), FILE_ALIGNMENT)
    for name, data, section_rva, section_raw in layout:
        raw_size = align(len(data), FILE_ALIGNMENT)
        flags = 0x60000020 if name != b".rsrc" else 0x40000040
        table += struct.pack(
            "<8sIIIIIIHHI", name, max(len(data), 1), section_rva, raw_size, section_raw, 0, 0, 0, 0, flags
        )
        bodies += data.ljust(raw_size, b"\0")
    dos = bytearray(b"MZ".ljust(0x40, b"\0"))
    dos[0x3C:0x40] = struct.pack("<I", 0x40)
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", 0x14C, count, 0x5F000000, 0, 0, 0xE0, 0x0102)
    optional = struct.pack(
        "<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII",
        0x10B, 14, 0, 0x200, 0, 0, SECTION_ALIGNMENT, SECTION_ALIGNMENT, 0, 0x400000,
        SECTION_ALIGNMENT, FILE_ALIGNMENT, 4, 0, 0, 0, 4, 0, 0, rva, headers_size, 0, 2, 0,
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16,
    )  # fmt: skip
    optional += b"".join(struct.pack("<II", *entry) for entry in directories)
    header = (bytes(dos) + coff + optional + bytes(table)).ljust(headers_size, b"\0")
    return header + bytes(bodies) + overlay


# --- UPX ---------------------------------------------------------------------------------


def upx_marked_pe() -> bytes:
    """A PE laid out as UPX lays its output out (UPX0, UPX1 sections, a UPX! header), not packed."""
    return minimal_pe([(b"UPX0", b"\0" * 16), (b"UPX1", b"UPX!" + b"\x0d" * 60)])


def upx_marked_elf() -> bytes:
    """A 64-bit ELF header with a UPX l_info ("UPX!") after its program header, not really packed."""
    header = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7, 2, 0x3E, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0,
    )  # fmt: skip
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0x200, 0x200, 0x1000)
    l_info = struct.pack("<I4sHBB", 0, b"UPX!", 0, 14, 22)
    return (header + program + l_info).ljust(0x200, b"\0")


EICAR_PROGRAM = r"""
#include <stdio.h>
static const char eicar[] = "%s";
static const char padding[65536] = "compressible padding";
int main(int argc, char **argv) { puts(argc > 5 ? padding : eicar); return 0; }
"""


def upx_packed_elf() -> bytes | None:
    """A small C program holding EICAR, compiled by `cc` and packed by `upx`; None without both."""
    compiler, packer = shutil.which("cc"), shutil.which("upx")
    if compiler is None or packer is None:
        return None
    escaped = EICAR.decode().replace("\\", "\\\\")
    with tempfile.TemporaryDirectory() as folder:
        source, program = Path(folder) / "eicar.c", Path(folder) / "eicar"
        source.write_text(EICAR_PROGRAM % escaped)
        subprocess.run([compiler, "-O1", "-o", str(program), str(source)], check=True, capture_output=True)
        subprocess.run([packer, "-q", str(program)], check=True, capture_output=True)
        return program.read_bytes()


# --- PE payloads -------------------------------------------------------------------------


def zip_of(members: dict[str, bytes]) -> bytes:
    from samples.basic import zip_bytes

    return zip_bytes(members)


def pe_with_zip_resource() -> bytes:
    return minimal_pe(resources={(10, 101): zip_of({"payload/eicar.com": EICAR}), (10, 102): b"plain data"})


# --- PyInstaller -------------------------------------------------------------------------

PYINSTALLER_MAGIC = b"MEI\x0c\x0b\x0a\x0b\x0e"


def carchive(entries: list[tuple[str, bytes, bytes]], compress: bool = True) -> bytes:
    """A PyInstaller CArchive of (name, type code, content) entries, zlib-compressed by default."""
    package, toc = bytearray(), bytearray()
    for name, code, content in entries:
        stored = zlib.compress(content) if compress and code not in (b"o", b"d") else content
        encoded = name.encode() + b"\0"
        encoded += b"\0" * (-(len(encoded) + 18) % 16)
        toc += struct.pack(
            "!IIIIBc", 18 + len(encoded), len(package), len(stored), len(content), compress, code
        )
        toc += encoded
        package += stored
    toc_offset = len(package)
    package += toc
    cookie_size = 88
    package += struct.pack(
        "!8sIIii64s",
        PYINSTALLER_MAGIC,
        len(package) + cookie_size,
        toc_offset,
        len(toc),
        311,
        b"libpython3.11.so.1.0",
    )
    return bytes(package)


def pyinstaller_entries() -> list[tuple[str, bytes, bytes]]:
    return [
        ("pyi-python-flag Py_GIL_DISABLED", b"o", b""),
        ("struct", b"m", b"\xe3" + b"\0" * 40),
        ("hello", b"s", b"\xe3compiled main script code object print('hello')"),
        ("PYZ.pyz", b"z", b"PYZ\0" + b"\0" * 60),
        ("data/eicar.com", b"x", EICAR),
    ]


def pyinstaller_pe() -> bytes:
    """A PE with a PyInstaller CArchive as its overlay, as PyInstaller's Windows bootloader has it."""
    return minimal_pe(overlay=carchive(pyinstaller_entries()))


# --- AutoIt (EA06) -----------------------------------------------------------------------
# A compiled script: a 16-byte GUID, "AU3!EA06", 16 reserved bytes, records, "AU3!EA06".
# Each record: its magic, then the type and source path (UTF-16, length and text each masked
# with fixed keys), a compression flag, three sizes/checksum masked likewise, two FILETIMEs
# and the data, every string and the data XORed with the EA06 key stream.

AUTOIT_SCRIPT_MAGIC = bytes.fromhex("A3484BBE986C4AA9994C530A86D6487D")
AUTOIT_RECORD_MAGIC = bytes.fromhex("6B43CA52")


def rotl32(value: int, count: int) -> int:
    return (value << count | value >> (32 - count)) & 0xFFFFFFFF


def ea06_keystream_xor(data: bytes, seed: int) -> bytes:
    """XOR `data` with the EA06 key stream seeded with `seed` (the same call encrypts and decrypts)."""
    table = []
    for _ in range(17):
        seed = (1 - seed * 0x53A9B4FB) & 0xFFFFFFFF
        table.append(seed)
    table.reverse()
    a, b = 16, 6

    def step() -> int:
        nonlocal a, b
        value = (rotl32(table[a], 9) + rotl32(table[b], 13)) & 0xFFFFFFFF
        table[a] = value
        a, b = (a + 1) % 17, (b + 1) % 17
        return value

    for _ in range(9):
        step()
    out = bytearray()
    for byte in data:
        step()
        out.append((step() >> 24) ^ byte)
    return bytes(out)


def ea06_string(text: str, length_key: int, seed: int) -> bytes:
    encoded = text.encode("utf-16-le")
    return struct.pack("<I", len(text) ^ length_key) + ea06_keystream_xor(encoded, len(text) + seed)


def ea06_record(record_type: str, source_path: str, data: bytes) -> bytes:
    return (
        AUTOIT_RECORD_MAGIC
        + ea06_string(record_type, 0xADBC, 0xB33F)
        + ea06_string(source_path, 0xF820, 0xF479)
        + b"\0"  # not compressed
        + struct.pack("<III", len(data) ^ 0x87BC, len(data) ^ 0x87BC, 0 ^ 0xA685)
        + b"\0" * 16
        + ea06_keystream_xor(data, 0x2477)
    )


AUTOIT_SOURCE = (
    'FileInstall("C:\\build\\eicar.com", @TempDir & "\\eicar.com")\r\nRun(@TempDir & "\\eicar.com")'
)


def autoit_a3x(truncated: bool = False) -> bytes:
    """An EA06 .a3x holding a Unicode script and a FileInstall'd EICAR."""
    records = ea06_record(">>>AUTOIT UNICODE SCRIPT<<<", "", b"\xff\xfe" + AUTOIT_SOURCE.encode("utf-16-le"))
    records += ea06_record("FILE", "C:\\build\\eicar.com", EICAR)
    data = AUTOIT_SCRIPT_MAGIC + b"AU3!EA06" + b"\0" * 16 + records + b"AU3!EA06"
    return data[: len(data) // 3] if truncated else data


def autoit_pe() -> bytes:
    """A PE with the compiled script in an RCDATA resource, where AutoIt's compiler puts it."""
    return minimal_pe(resources={(10, 1): autoit_a3x()})


# --- InstallShield (ISSetupStream) ------------------------------------------------------
# Header: signature, u16 file count, 30 reserved bytes. Each file: u32 name length, u32 flags,
# 2 reserved, u32 size, 8 reserved, u16 "compressed" (zlib), UTF-16 name, then the data, each
# byte nibble-swapped and XORed with a key derived from the name (complemented).


def iss_encode(name: str, data: bytes, flags: int) -> bytes:
    key = bytes(x ^ k for x, k in zip(name.encode(), b"\x13\x35\x86\x07" * len(name), strict=False))
    if flags & 4:
        key = (key * (1024 // len(key) + 1))[:1024]
    out = bytearray()
    for index, byte in enumerate(data):
        value = ~byte & 0xFF ^ key[index % len(key)]
        out.append((value << 4 | value >> 4) & 0xFF)
    return bytes(out)


def installshield_setup(members: dict[str, bytes] | None = None) -> bytes:
    members = members or {"eicar.com": EICAR}
    stream = b"ISSetupStream\0" + struct.pack("<H", len(members)) + b"\0" * 30
    for name, data in members.items():
        packed = zlib.compress(data)
        encoded_name = name.encode("utf-16-le")
        stream += struct.pack("<II2sI8sH", len(encoded_name), 4, b"", len(packed), b"", 1) + encoded_name
        stream += iss_encode(name, packed, 4)
    return minimal_pe(overlay=stream)


# --- Inno Setup: markers only -----------------------------------------------------------


def inno_marked_pe() -> bytes:
    """A PE carrying Inno Setup's markers but no setup data: recognised, not unpackable."""
    return minimal_pe(overlay=b"Inno Setup Setup Data (6.1.0) (u)" + b"\0" * 64 + b"zlb\x1a" + b"\0" * 64)


def nsis_installer() -> bytes:
    """An NSIS installer holding EICAR, made by makensis (see samples/files/executables/README.md)."""
    return (SAMPLES_DIR / "eicar-nsis-setup.exe").read_bytes()


IDENTIFICATION_SAMPLES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("Binary", "AutoIt", autoit_a3x),
]
