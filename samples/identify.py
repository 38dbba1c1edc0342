"""Small samples of every file type the identification table names, built here from real headers.

Each builder returns a few dozen bytes to a few KiB: the real header of its format, enough
for our byte signatures and for libmagic to say the same. `IDENTIFICATION_SAMPLES` pairs
each with the (file_type, file_subtype) it must be identified as.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import marshal
import pickle
import sqlite3
import struct
import tempfile
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

from samples.basic import ole_bytes, plain_pdf, tar_bytes, zip_bytes

Builder = Callable[[], bytes]


def filler(size: int, seed: int = 1) -> bytes:
    """Deterministic binary filler (not text, not zeros) for the body of a sample."""
    out = bytearray()
    state = seed
    while len(out) < size:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((state >> 16) & 0xFF)
    return bytes(out)


# --- Executables -------------------------------------------------------------------------

IMAGE_FILE_EXECUTABLE_IMAGE, IMAGE_FILE_DLL = 0x0002, 0x2000
SUBSYSTEM_NATIVE, SUBSYSTEM_GUI, SUBSYSTEM_CONSOLE, SUBSYSTEM_EFI_APPLICATION = 1, 2, 3, 10


def pe_bytes(*, dll: bool = False, dotnet: bool = False, pe32plus: bool = False, subsystem: int = 3) -> bytes:
    """A PE image: DOS header and stub, PE headers with 16 data directories, one .text section."""
    lfanew = 0x80
    dos = bytearray(b"MZ" + b"\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8".ljust(62, b"\0"))
    dos[0x3C:0x40] = struct.pack("<I", lfanew)
    stub = b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
    stub += b"This program cannot be run in DOS mode.\r\r\n$"
    dos_part = (bytes(dos) + stub).ljust(lfanew, b"\0")
    machine = 0x8664 if pe32plus else 0x14C
    optional_size = 0xF0 if pe32plus else 0xE0
    characteristics = (
        IMAGE_FILE_EXECUTABLE_IMAGE | (IMAGE_FILE_DLL if dll else 0) | (0 if pe32plus else 0x100)
    )
    file_header = struct.pack("<HHIIIHH", machine, 1, 0x5F000000, 0, 0, optional_size, characteristics)
    directories = [(0, 0)] * 16
    if dotnet:
        directories[14] = (0x2008, 0x48)
    if pe32plus:
        optional = struct.pack("<HBBIIIII", 0x20B, 14, 0, 0x200, 0x200, 0, 0x1000, 0x1000)
        optional += struct.pack(
            "<QIIHHHHHHIIIIHHQQQQII",
            0x140000000,
            0x1000,
            0x200,
            6,
            0,
            0,
            0,
            6,
            0,
            0,
            0x3000,
            0x200,
            0,
            subsystem,
            0x8160,
            0x100000,
            0x1000,
            0x100000,
            0x1000,
            0,
            16,
        )
    else:
        optional = struct.pack("<HBBIIIIII", 0x10B, 14, 0, 0x200, 0x200, 0, 0x1000, 0x1000, 0x2000)
        optional += struct.pack(
            "<IIIHHHHHHIIIIHHIIIIII",
            0x400000,
            0x1000,
            0x200,
            6,
            0,
            0,
            0,
            6,
            0,
            0,
            0x3000,
            0x200,
            0,
            subsystem,
            0x8140,
            0x100000,
            0x1000,
            0x100000,
            0x1000,
            0,
            16,
        )
    optional += b"".join(struct.pack("<II", rva, size) for rva, size in directories)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x100, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020)
    headers = (dos_part + b"PE\0\0" + file_header + optional + section).ljust(0x200, b"\0")
    return headers + b"\xc3".ljust(0x200, b"\xcc")


def dos_exe() -> bytes:
    """A DOS MZ executable: no PE header, relocation table at 0x1c."""
    header = struct.pack("<2sHHHHHHHHHHHHH", b"MZ", 0x40, 1, 0, 2, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x1C, 0)
    return header.ljust(32, b"\0") + b"\xb4\x4c\xcd\x21".ljust(32, b"\x90")


def ne_exe() -> bytes:
    """A 16-bit Windows (NE) executable: DOS header pointing at an NE header."""
    dos = bytearray(b"MZ".ljust(64, b"\0"))
    dos[0x18:0x1A] = struct.pack("<H", 0x40)
    dos[0x3C:0x40] = struct.pack("<I", 0x80)
    ne = bytearray(b"NE\x05\x0a".ljust(64, b"\0"))
    ne[0x0C:0x0E] = struct.pack("<H", 0x8302)  # flags: DLL bit clear, Windows API
    ne[0x36] = 2  # target OS: Windows
    ne[0x3F] = 3  # expected Windows version 3.x
    return bytes(dos).ljust(0x80, b"\0") + bytes(ne) + b"\0" * 64


def elf_bytes(e_type: int) -> bytes:
    """A 64-bit little-endian x86-64 ELF header of the given e_type, no segments."""
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", e_type, 62, 1, 0x401000 if e_type == 2 else 0, 0, 0, 0, 64, 56, 0, 64, 0, 0
    )
    return header + b"\0" * 64


MH_MAGIC_64, MH_CIGAM = b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xce"
MH_OBJECT, MH_EXECUTE, MH_DYLIB, MH_BUNDLE = 1, 2, 6, 8


def macho_bytes(filetype: int) -> bytes:
    """A 64-bit x86_64 Mach-O header of the given file type, no load commands."""
    return MH_MAGIC_64 + struct.pack("<iiIIII", 0x01000007, 3, filetype, 0, 0, 0) + b"\0" * 64


def macho_universal() -> bytes:
    """A fat (universal) Mach-O holding x86_64 and arm64 slices."""
    slice_ = macho_bytes(MH_EXECUTE)
    header = b"\xca\xfe\xba\xbe" + struct.pack(">I", 2)
    header += struct.pack(">iiIII", 0x01000007, 3, 0x1000, len(slice_), 12)
    header += struct.pack(">iiIII", 0x0100000C, 0, 0x2000, len(slice_), 12)
    return header.ljust(0x1000, b"\0") + slice_.ljust(0x1000, b"\0") + slice_


def coff_object() -> bytes:
    """An x86-64 COFF object file (what MSVC's cl /c writes): one .text section, no symbols."""
    header = struct.pack("<HHIIIHH", 0x8664, 1, 0x5F000000, 0x3C + 0x20, 0, 0, 0)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0, 0, 4, 0x3C, 0, 0, 0, 0, 0x60500020)
    return header + section + b"\xc3\x90\x90\x90" + b"\0" * 18


def ole_with_clsid(streams: dict[str, bytes], clsid: str) -> bytes:
    """An OLE compound file whose root storage carries `clsid` (how libmagic names Office and MSI)."""
    data = bytearray(ole_bytes(streams))
    # Root entry: the first directory entry, in sector 1 (after the header and the FAT sector).
    root = 512 + 512
    data[root + 80 : root + 96] = uuid.UUID(clsid).bytes_le
    return bytes(data)


MSI_CLSID = "000c1084-0000-0000-c000-000000000046"
WORD_CLSID = "00020906-0000-0000-c000-000000000046"
EXCEL_CLSID = "00020820-0000-0000-c000-000000000046"
POWERPOINT_CLSID = "64818d10-4f9b-11cf-86ea-00aa00b929e8"


def summary_information(title: str, application: str) -> bytes:
    """A `\\x05SummaryInformation` property set (MS-OLEPS) with a title and the creating application."""

    def lpstr(text: str) -> bytes:
        data = text.encode("latin-1") + b"\0"
        return struct.pack("<II", 0x1E, len(data)) + data.ljust(-(-len(data) // 4) * 4, b"\0")

    properties = [(2, lpstr(title)), (18, lpstr(application))]  # PIDSI_TITLE, PIDSI_APPNAME
    offset = 8 + 8 * len(properties)
    table, values = b"", b""
    for property_id, value in properties:
        table += struct.pack("<II", property_id, offset + len(values))
        values += value
    section = struct.pack("<II", offset + len(values), len(properties)) + table + values
    fmtid = uuid.UUID("f29f85e0-4ff9-1068-ab91-08002b27b3d9").bytes_le
    header = struct.pack("<HHI", 0xFFFE, 0, 0x00020006) + b"\0" * 16 + struct.pack("<I", 1)
    return header + fmtid + struct.pack("<I", 48) + section


def msi_installer() -> bytes:
    streams = {
        "\x05SummaryInformation": summary_information("Installation Database", "Windows Installer XML"),
        "\u4840\u3f3f\u4577\u446c\u3e6a\u44b2\u4831": b"\0" * 64,
    }
    return ole_with_clsid(streams, MSI_CLSID)


def ole_word() -> bytes:
    streams = {
        "\x05SummaryInformation": summary_information("Letter", "Microsoft Office Word"),
        "WordDocument": b"\xec\xa5\xc1\x00" + b"\0" * 60,
        "1Table": b"\0" * 64,
    }
    return ole_with_clsid(streams, WORD_CLSID)


def ole_excel() -> bytes:
    streams = {
        "\x05SummaryInformation": summary_information("Book", "Microsoft Excel"),
        "Workbook": b"\x09\x08\x10\x00\x00\x06\x05\x00" + b"\0" * 56,
    }
    return ole_with_clsid(streams, EXCEL_CLSID)


def ole_powerpoint() -> bytes:
    streams = {
        "\x05SummaryInformation": summary_information("Slides", "Microsoft Office PowerPoint"),
        "PowerPoint Document": b"\0" * 64,
        "Current User": b"\0" * 32,
    }
    return ole_with_clsid(streams, POWERPOINT_CLSID)


def ole_plain() -> bytes:
    return ole_bytes({"Contents": b"\0" * 64})


# --- Bytecode and packages --------------------------------------------------------------


def dex_bytes(magic: bytes = b"dex\n035\0") -> bytes:
    header = bytearray(magic + b"\0" * 104)
    header[32:36] = struct.pack("<I", 0x70 + 16)  # file_size
    header[36:40] = struct.pack("<I", 0x70)  # header_size
    header[40:44] = struct.pack("<I", 0x12345678)  # endian tag
    return bytes(header) + b"\0" * 16


def java_class() -> bytes:
    """A Java 17 class file: magic, version 61.0, a tiny constant pool."""
    pool = b"\x07\x00\x02\x01\x00\x04Main\x07\x00\x04\x01\x00\x10java/lang/Object"
    return (b"\xca\xfe\xba\xbe" + struct.pack(">HHH", 0, 61, 5) + pool
            + struct.pack(">HHHHHHH", 0x21, 1, 3, 0, 0, 0, 0))  # fmt: skip


def webassembly() -> bytes:
    """A WebAssembly module: magic, version 1, a type section with one () -> () function."""
    return (
        b"\0asm\x01\0\0\0" + b"\x01\x04\x01\x60\x00\x00" + b"\x03\x02\x01\x00" + b"\x0a\x04\x01\x02\x00\x0b"
    )


def python_bytecode() -> bytes:
    """A .pyc of the running Python: its magic number, flags, then a marshalled code object."""
    code = compile("print('hello')\n", "hello.py", "exec")
    return importlib.util.MAGIC_NUMBER + b"\0" * 12 + marshal.dumps(code)


def lua_bytecode() -> bytes:
    """A Lua 5.3 precompiled chunk header (luac): signature, version, format, LUAC_DATA."""
    return b"\x1bLua\x53\x00\x19\x93\r\n\x1a\n\x04\x08\x04\x08\x08" + struct.pack("<q", 0x5678) + b"\0" * 40


def luajit_bytecode() -> bytes:
    return b"\x1bLJ\x02\x02\x0bhello.lua" + b"\0" * 32


def odex_bytes() -> bytes:
    return b"dey\n036\0" + struct.pack("<IIII", 40, 0x70, 40 + 0x70, 0) + dex_bytes()


def java_serialized() -> bytes:
    """A Java serialization stream holding one java.lang.String."""
    return b"\xac\xed\x00\x05\x74\x00\x0bhello world"


def python_pickle() -> bytes:
    return pickle.dumps({"key": list(range(10))}, protocol=4)


def flash(signature: bytes) -> Builder:
    def build() -> bytes:
        body = b"\x78\x00\x05\x5f\x00\x00\x0f\xa0\x00\x00\x0c\x01\x00\x44\x11\x08\x00\x00\x00\x40\x00\x00\x00"
        if signature == b"FWS":
            payload = body
        elif signature == b"CWS":
            payload = zlib.compress(body)
        else:
            import lzma

            lzma_raw = lzma.compress(body, format=lzma.FORMAT_ALONE)
            payload = struct.pack("<I", len(lzma_raw) - 13) + lzma_raw[:5] + lzma_raw[13:]
        return signature + b"\x0a" + struct.pack("<I", 8 + len(body)) + payload

    return build


def crx_package() -> bytes:
    """A Chrome extension (CRX3): magic, version, header length, header, then the zip."""
    return b"Cr24" + struct.pack("<II", 3, 4) + b"\x12\x02\x08\x01" + zip_bytes({"manifest.json": b"{}"})


# --- Documents -----------------------------------------------------------------------------


def ooxml(prefix: str, content_type: str) -> Builder:
    def build() -> bytes:
        types = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Override PartName="/{prefix}main.xml" ContentType="{content_type}"/></Types>'
        ).encode()
        return zip_bytes(
            {
                "[Content_Types].xml": types,
                "_rels/.rels": b'<?xml version="1.0"?><Relationships/>',
                f"{prefix}main.xml": b'<?xml version="1.0"?><document/>',
            }
        )

    return build


def postscript() -> bytes:
    return b"%!PS-Adobe-3.0\n%%Creator: scanhub\n%%Pages: 1\n%%EndComments\n/Helvetica findfont\nshowpage\n"


def eps() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\nnewpath 0 0 moveto\nshowpage\n"
    )


def djvu() -> bytes:
    body = b"DJVUINFO" + struct.pack(">I", 10) + struct.pack(">HHBBHB", 100, 100, 24, 0, 300, 22) + b"\0"
    return b"AT&TFORM" + struct.pack(">I", len(body)) + body


def onenote() -> bytes:
    return uuid.UUID("7b5c52e4-d88c-4da7-aeb1-5378d02996d3").bytes_le + filler(512)


def wordperfect() -> bytes:
    return b"\xffWPC" + struct.pack("<I", 0x200) + b"\x01\x0a\x02\x01" + b"\0" * 4 + filler(496)


def hwp3() -> bytes:
    return b"HWP Document File V3.00 \x1a\x01\x02\x03\x04\x05" + filler(256)


def mobi() -> bytes:
    return b"My_Book".ljust(32, b"\0") + b"\0" * 28 + b"BOOKMOBI" + b"\0" * 64


def rtf() -> bytes:
    return b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}}\\f0\\fs24 Hello.\\par}\n"


# --- Scripts and text -----------------------------------------------------------------------

C_SOURCE = b"""#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("hello %d\\n", argc);
    return 0;
}
"""
CPP_SOURCE = b"""#include <iostream>
#include <string>

class Greeter {
public:
    void greet(const std::string &name) { std::cout << name << std::endl; }
};

int main() { Greeter g; g.greet("x"); return 0; }
"""
JAVA_SOURCE = b"""import java.util.List;

public class Main {
    public static void main(String[] args) {
        System.out.println("hello");
    }
}
"""


def text(data: bytes) -> Builder:
    return lambda: data


# --- Images and media --------------------------------------------------------------------


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def jpeg() -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + filler(64) + b"\xff\xd9"


def gif() -> bytes:
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
            b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")  # fmt: skip


def bmp() -> bytes:
    pixels = b"\xff\x00\x00\x00" * 4
    info = struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + info + pixels


def tiff() -> bytes:
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 9 * 12 + 4), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]  # fmt: skip
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count)
        + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, count, value in entries
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + b"\x80"


def icon(kind: int) -> Builder:
    def build() -> bytes:
        image = bmp()[14:]
        directory = struct.pack("<HHH", 0, kind, 1) + struct.pack(
            "<BBBBHHII", 16, 16, 0, 0, 1, 32, len(image), 22
        )
        return directory + image

    return build


def riff(form: bytes, chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + form + chunks


def webp() -> bytes:
    vp8l = b"\x2f\x00\x00\x00\x00" + b"\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
    return riff(b"WEBP", b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l + b"\0")


def wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    data = b"\0\0" * 400
    return riff(
        b"WAVE", b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )


def avi() -> bytes:
    avih = struct.pack("<IIIIIIIIII", 40000, 0, 0, 0x10, 1, 0, 1, 0, 64, 48) + b"\0" * 16
    hdrl = b"hdrl" + b"avih" + struct.pack("<I", len(avih)) + avih
    return riff(
        b"AVI ", b"LIST" + struct.pack("<I", len(hdrl)) + hdrl + b"LIST" + struct.pack("<I", 4) + b"movi"
    )


def ani() -> bytes:
    anih = struct.pack("<IIIIIIIII", 36, 1, 1, 0, 0, 0, 0, 10, 1)
    return riff(b"ACON", b"anih" + struct.pack("<I", len(anih)) + anih)


def svg() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'width="10" height="10"><rect width="10" height="10" fill="red"/></svg>\n')  # fmt: skip


def psd() -> bytes:
    return b"8BPS\x00\x01" + b"\0" * 6 + struct.pack(">HIIHH", 3, 16, 16, 8, 3) + b"\0" * 12 + filler(64)


def iso_bmff(brand: bytes, compatible: bytes) -> Builder:
    def build() -> bytes:
        ftyp = brand + b"\0\0\0\0" + compatible
        mdat = filler(256)
        return (struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + struct.pack(">I", 8 + len(mdat)) + b"mdat"
                + mdat)  # fmt: skip

    return build


def jpeg2000() -> bytes:
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    ftyp = b"\x00\x00\x00\x14ftypjp2 \x00\x00\x00\x00jp2 "
    header = b"\x00\x00\x00\x2djp2h\x00\x00\x00\x16ihdr" + struct.pack(">IIHBBBB", 16, 16, 3, 7, 7, 0, 0)
    return signature + ftyp + header + b"\x00\x00\x00\x0fcolr\x01\x00\x00\x00\x00\x00\x10" + filler(64)


def xcf() -> bytes:
    return b"gimp xcf v011\0" + struct.pack(">III", 16, 16, 0) + b"\0" * 64


def emf() -> bytes:
    header = (
        struct.pack("<II", 1, 108)
        + struct.pack("<iiii", 0, 0, 100, 100)
        + struct.pack("<iiii", 0, 0, 2540, 2540)
    )
    header += b" EMF" + struct.pack("<IIIHH", 0x10000, 108 + 20, 2, 0, 0) + struct.pack("<III", 0, 0, 0)
    header += struct.pack("<ii", 1920, 1080) + struct.pack("<ii", 508, 285)
    header = header.ljust(108, b"\0")
    return header + struct.pack("<II", 14, 20) + b"\0" * 12


def wmf() -> bytes:
    placeable = b"\xd7\xcd\xc6\x9a\x00\x00" + struct.pack("<hhhhHI", 0, 0, 100, 100, 1440, 0)
    checksum = 0
    for (word,) in struct.iter_unpack("<H", placeable):
        checksum ^= word
    header = struct.pack("<HHHIHIH", 1, 9, 0x300, 12, 0, 3, 0)
    return placeable + struct.pack("<H", checksum) + header + struct.pack("<IH", 3, 0)


def dds() -> bytes:
    return (
        b"DDS "
        + struct.pack("<IIIIIII", 124, 0x1007, 16, 16, 64, 0, 1)
        + b"\0" * 44
        + struct.pack("<II", 32, 4)
        + b"DXT1"
        + b"\0" * 60
    )


def exr() -> bytes:
    return (
        b"\x76\x2f\x31\x01\x02\x00\x00\x00channels\0chlist\0"
        + struct.pack("<I", 18)
        + b"R\0"
        + b"\0" * 16
        + filler(64)
    )


def qoi() -> bytes:
    return b"qoif" + struct.pack(">II", 1, 1) + b"\x03\x00" + b"\xfe\xff\x00\x00" + b"\0" * 7 + b"\x01"


def jpeg_xl() -> bytes:
    return b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00\x48\x00\x4b" + filler(64)


def netpbm() -> bytes:
    return b"P6\n4 4\n255\n" + b"\xff\x00\x00" * 16


def xpm() -> bytes:
    return b'/* XPM */\nstatic char *x[] = {\n"2 2 1 1",\n". c #FF0000",\n"..",\n".."};\n'


def icns() -> bytes:
    body = b"is32" + struct.pack(">I", 8 + 16) + filler(16)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def dicom() -> bytes:
    element = struct.pack("<HH", 0x0002, 0x0010) + b"UI" + struct.pack("<H", 20) + b"1.2.840.10008.1.2.1\0"
    return b"\0" * 128 + b"DICM" + element + filler(64)


def fits() -> bytes:
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    0",
        "END",
    ]
    return "".join(card.ljust(80) for card in cards).ljust(2880).encode()


def pcx() -> bytes:
    """A ZSoft PCX image (version 5, RLE, 8 bits): libmagic knows it, no row of ours does."""
    header = (
        struct.pack("<BBBBHHHHHH", 10, 5, 1, 8, 0, 0, 3, 3, 72, 72)
        + b"\0" * 48
        + struct.pack("<BBHH", 0, 1, 4, 1)
    )
    return header.ljust(128, b"\0") + b"\xc4\x00" * 4


def mp3() -> bytes:
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x15" + b"TIT2\x00\x00\x00\x0b\x00\x00\x03hello song"
    frame = b"\xff\xfb\x90\x64" + b"\0" * 413
    return id3 + frame * 3


def mkv(doctype: bytes) -> Builder:
    def build() -> bytes:
        fields = (b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82"
                  + bytes([0x80 | len(doctype)]) + doctype + b"\x42\x87\x81\x04\x42\x85\x81\x02")  # fmt: skip
        return (
            b"\x1a\x45\xdf\xa3"
            + bytes([0x80 | len(fields)])
            + fields
            + b"\x18\x53\x80\x67\x01"
            + b"\0" * 7
            + filler(64)
        )

    return build


def flac() -> bytes:
    streaminfo = (
        struct.pack(">HHBBBBBB", 4096, 4096, 0, 0, 0x0E, 0, 0, 0) + b"\x0a\xc4\x40\xf0\x00\x00\x00\x00"
    )
    streaminfo = streaminfo.ljust(34, b"\0")
    return b"fLaC" + b"\x80" + struct.pack(">I", len(streaminfo))[1:] + streaminfo + b"\xff\xf8" + filler(32)


def ogg() -> bytes:
    vorbis = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 2, 44100, 0, 128000, 0, 0xB8, 1)
    header = b"OggS\x00\x02" + b"\0" * 8 + struct.pack("<III", 1, 0, 0) + b"\x01" + bytes([len(vorbis)])
    return header + vorbis


def aiff() -> bytes:
    comm = struct.pack(">hIh", 1, 100, 16) + b"\x40\x0e\xac\x44" + b"\0" * 6
    body = (
        b"AIFF"
        + b"COMM"
        + struct.pack(">I", len(comm))
        + comm
        + b"SSND"
        + struct.pack(">III", 208, 0, 0)
        + b"\0" * 200
    )
    return b"FORM" + struct.pack(">I", len(body)) + body


def sun_audio() -> bytes:
    return b".snd" + struct.pack(">IIIII", 24, 800, 1, 8000, 1) + b"\x7f" * 800


def midi() -> bytes:
    track = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track


def asf() -> bytes:
    header = uuid.UUID("75b22630-668e-11cf-a6d9-00aa0062ce6c").bytes_le
    return header + struct.pack("<QIBB", 30, 0, 1, 2) + filler(64)


def flv() -> bytes:
    return b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + b"\x12\x00\x00\x0a" + b"\0" * 7 + filler(10)


def mpeg_ps() -> bytes:
    pack = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8"
    return (
        pack
        + b"\x00\x00\x01\xbb\x00\x12\x80\xc4\xe1\x04\xe1\x7f\xb9\xe0\xe8\xb8\xc0\x20\xbd\xe0\x3a\xbf\xe0\x02"
        + b"\0" * 64
    )


def mpeg_ts() -> bytes:
    packet = b"\x47\x40\x00\x10\x00\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00\x2a\xb1\x04\xb2"
    return b"".join(packet.ljust(188, b"\xff") for _ in range(4))


def amr() -> bytes:
    return b"#!AMR\n" + b"\x3c" + filler(31) * 4


def aac() -> bytes:
    frame = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\0" * 9
    return frame * 8


def ape() -> bytes:
    return b"MAC \x96\x0f" + filler(64)


def wavpack() -> bytes:
    return b"wvpk" + struct.pack("<IHBBIIIII", 100, 0x410, 0, 0, 1000, 0, 1000, 0x1805, 0) + filler(64)


def realmedia() -> bytes:
    return b".RMF\x00\x00\x00\x12\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05" + filler(64)


def caf() -> bytes:
    return (
        b"caff\x00\x01\x00\x00"
        + b"desc"
        + struct.pack(">q", 32)
        + b"\x40\xe5\x88\x80\0\0\0\0lpcm"
        + b"\0" * 20
    )


def tracker_mod() -> bytes:
    header = b"song".ljust(20, b"\0") + b"".join(b"sample".ljust(22, b"\0") + b"\0" * 8 for _ in range(31))
    return header + b"\x01\x00" + bytes(128) + b"M.K." + b"\0" * 1024


def tracker_xm() -> bytes:
    return (
        b"Extended Module: song".ljust(37, b" ")
        + b"\x1aFastTracker v2.00   \x04\x01"
        + struct.pack("<I", 276)
        + b"\0" * 272
    )


def tracker_s3m() -> bytes:
    return (
        b"song".ljust(28, b"\0")
        + b"\x1a\x10\0\0"
        + struct.pack("<HHHHHH", 0, 0, 0, 0, 0x1320, 2)
        + b"SCRM"
        + b"\0" * 64
    )


def creative_voice() -> bytes:
    return (
        b"Creative Voice File\x1a\x1a\x00\x0a\x01\x29\x11"
        + b"\x01\x12\x00\x00\xa5\x00"
        + b"\x80" * 16
        + b"\0"
    )


# --- Fonts ---------------------------------------------------------------------------------


def sfnt(version: bytes) -> bytes:
    tables = [b"OS/2", b"cmap", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp", b"name", b"post"]
    header = version + struct.pack(">HHHH", len(tables), 128, 3, len(tables) * 16 - 128)
    offset = 12 + 16 * len(tables)
    records = b"".join(struct.pack(">4sIII", tag, 0, offset + 16 * i, 16) for i, tag in enumerate(tables))
    return header + records + b"\0" * 16 * len(tables)


def woff(signature: bytes) -> Builder:
    def build() -> bytes:
        return signature + b"\x00\x01\x00\x00" + struct.pack(">IHH", 200, 1, 0) + b"\0" * 32 + filler(128)

    return build


def ttc() -> bytes:
    return b"ttcf\x00\x01\x00\x00" + struct.pack(">II", 1, 16) + sfnt(b"\x00\x01\x00\x00")


def eot() -> bytes:
    """An Embedded OpenType header: sizes, version 2.1, flags, PANOSE, charset, weight, fsType, magic."""
    header = (
        struct.pack("<IIII", 200, 100, 0x00020001, 0)
        + b"\0" * 10
        + b"\x01\x00"
        + struct.pack("<IHH", 400, 0, 0x504C)
    )
    return header.ljust(82, b"\0") + filler(118)


def type1_font() -> bytes:
    return (
        b"%!PS-AdobeFont-1.0: Test 001.000\n%%CreationDate: 2024\n/FontName /Test def\ncurrentfile eexec\n"
        + b"0" * 64
    )


def pfb_font() -> bytes:
    text_part = type1_font()
    return b"\x80\x01" + struct.pack("<I", len(text_part)) + text_part + b"\x80\x03"


def bdf_font() -> bytes:
    return (
        b"STARTFONT 2.1\nFONT -misc-test-medium-r-normal--8-80-75-75-c-50-iso8859-1\nSIZE 8 75 75\nENDFONT\n"
    )


def pcf_font() -> bytes:
    return b"\x01fcp" + struct.pack("<I", 1) + struct.pack("<IIII", 1, 0x0E, 32, 28) + b"\0" * 28


# --- Databases -----------------------------------------------------------------------------


def sqlite_database() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sample.sqlite"
        connection = sqlite3.connect(path)
        connection.execute("create table t (a integer, b text)")
        connection.execute("insert into t values (1, 'x')")
        connection.commit()
        connection.close()
        return path.read_bytes()


def jet_database(name: bytes) -> Builder:
    def build() -> bytes:
        return b"\x00\x01\x00\x00" + name.ljust(16, b"\0") + struct.pack("<I", 1) + filler(2048 - 24)

    return build


def berkeley_db() -> bytes:
    # A Btree metadata page: LSN, page number, then the magic 0x053162 and version 9.
    return b"\0" * 12 + struct.pack("<III", 0x053162, 9, 4096) + b"\0" * 4096


def ese_database() -> bytes:
    return (
        struct.pack("<I", 0x11223344) + b"\xef\xcd\xab\x89" + struct.pack("<II", 0x620, 0) + filler(4096 - 16)
    )


def outlook_pst() -> bytes:
    return b"!BDN" + struct.pack("<I", 0) + b"SM" + struct.pack("<HHH", 23, 19, 1) + b"\x01\x01" + b"\0" * 500


def keepass() -> bytes:
    return b"\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5" + struct.pack("<HH", 1, 4) + b"\x02\x10\x00" + filler(64)


# --- Disk images and firmware -------------------------------------------------------------


def vhd() -> bytes:
    footer = (
        b"conectix"
        + struct.pack(">III", 2, 0x10000, 512)
        + struct.pack(">I", 0)
        + b"vpc "
        + struct.pack(">I", 0x50003)
    )
    footer += b"Wi2k" + struct.pack(">QQ", 1 << 20, 1 << 20) + struct.pack(">HBBI", 20, 4, 17, 3)
    return footer.ljust(512, b"\0") + b"cxsparse" + b"\0" * 1024


def vhdx() -> bytes:
    return b"vhdxfile" + "Microsoft Windows".encode("utf-16-le") + b"\0" * 4096


def vmdk() -> bytes:
    return b"KDMV" + struct.pack("<IIQQQQ", 1, 3, 1 << 20, 128, 1, 20) + b"\0" * 460


def qcow2() -> bytes:
    return b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 1 << 20) + b"\0" * 80


def vdi() -> bytes:
    return (
        b"<<< Oracle VM VirtualBox Disk Image >>>\n".ljust(64, b"\0")
        + b"\x7f\x10\xda\xbe\x01\x00\x01\x00"
        + b"\0" * 440
    )


def mbr() -> bytes:
    entry = struct.pack("<B3sB3sII", 0x80, b"\x20\x21\x00", 0x83, b"\xfe\xff\xff", 2048, 204800)
    return b"\xfa\x31\xc0\x8e\xd8".ljust(446, b"\0") + entry + b"\0" * 48 + b"\x55\xaa"


def gpt() -> bytes:
    protective = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, 0xFFFFFFFF)
    header = b"EFI PART" + struct.pack("<IIIIQQQQ", 0x10000, 92, 0, 0, 1, 2047, 34, 2014) + b"\0" * 16
    return b"\0" * 446 + protective + b"\0" * 48 + b"\x55\xaa" + header.ljust(512, b"\0")


def fat_boot_sector() -> bytes:
    bpb = b"\xeb\x3c\x90MSDOS5.0" + struct.pack(
        "<HBHBHHBHHHII", 512, 4, 1, 2, 512, 20480, 0xF8, 20, 32, 2, 0, 0
    )
    bpb += b"\x80\x00\x29\x12\x34\x56\x78NO NAME    FAT16   "
    return bpb.ljust(510, b"\0") + b"\x55\xaa"


def ntfs_boot_sector() -> bytes:
    bpb = b"\xeb\x52\x90NTFS    " + struct.pack(
        "<HBHBHHBHHHII", 512, 8, 0, 0, 0, 0, 0xF8, 0, 63, 255, 2048, 0
    )
    bpb += struct.pack("<IQQQ", 0x800080, 204799, 4, 12800) + b"\xf6\x00\x00\x00\x01\x00\x00\x00"
    return bpb.ljust(510, b"\0") + b"\x55\xaa"


def ext_filesystem() -> bytes:
    superblock = bytearray(1024)
    superblock[0:8] = struct.pack("<II", 128, 1024)
    superblock[0x38:0x3A] = b"\x53\xef"
    superblock[0x4C:0x50] = struct.pack("<I", 1)
    superblock[0x5C:0x60] = struct.pack("<I", 0x3C)
    superblock[0x60:0x64] = struct.pack("<I", 0x2C2)
    return b"\0" * 1024 + bytes(superblock)


def squashfs() -> bytes:
    return b"hsqs" + struct.pack("<IIIIHHHHHH", 1, 0, 131072, 0, 1, 17, 0, 0, 4, 0) + b"\0" * 64


def wim_image() -> bytes:
    return b"MSWIM\0\0\0" + struct.pack("<IIII", 208, 0x10D00, 0x20082, 32768) + b"\0" * 200


def uefi_volume() -> bytes:
    guid = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3").bytes_le
    return (
        b"\0" * 16
        + guid
        + struct.pack("<Q", 0x1000)
        + b"_FVH"
        + struct.pack("<IHHHBB", 0x4FEFF, 0x48, 0, 0x60, 0, 2)
        + b"\0" * 256
    )


def intel_hex() -> bytes:
    return (b":10010000214601360121470136007EFE09D2190140\n"
            b":100110002146017E17C20001FF5F16002148011928\n:00000001FF\n")  # fmt: skip


def uimage() -> bytes:
    return (
        b"\x27\x05\x19\x56"
        + struct.pack(">IIIIIIBBBB", 0, 0, 64, 0x80008000, 0x80008000, 0, 5, 2, 2, 0)
        + b"Linux".ljust(32, b"\0")
        + b"\0" * 64
    )


def android_boot() -> bytes:
    return (
        b"ANDROID!"
        + struct.pack("<IIIIIIII", 0x1000, 0x8000, 0, 0x1000000, 0, 0xF00000, 0x100, 2048)
        + b"\0" * 1600
    )


def device_tree() -> bytes:
    return (
        b"\xd0\x0d\xfe\xed"
        + struct.pack(">IIIIIIIII", 0x48, 0x38, 0x48, 0x28, 17, 16, 0, 0, 0x10)
        + b"\0" * 32
    )


# --- Certificates and keys -----------------------------------------------------------------


def pem(label: str, body: bytes | None = None) -> Builder:
    def build() -> bytes:
        data = base64.encodebytes(body if body is not None else filler(300)).replace(b"\n", b"")
        lines = [data[i : i + 64] for i in range(0, len(data), 64)]
        return (
            f"-----BEGIN {label}-----\n".encode() + b"\n".join(lines) + f"\n-----END {label}-----\n".encode()
        )

    return build


def der_certificate() -> bytes:
    """A real X.509 certificate in DER."""
    return base64.b64decode(CERTIFICATE_B64)


# A self-signed certificate for CN=scanhub-test (ECDSA P-256, made with `openssl req -x509`), in DER.
CERTIFICATE_B64 = (
    "MIIBgjCCASmgAwIBAgIUCeWVrBcwleFjnG2eUqGoKKloevMwCgYIKoZIzj0EAwIwFzEVMBMGA1UEAwwMc2Nhbmh1"
    "Yi10ZXN0MB4XDTI2MTEyMzIwMjQyOVoXDTM2MTEyMDIwMjQyOVowFzEVMBMGA1UEAwwMc2Nhbmh1Yi10ZXN0MFkw"
    "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIhRAwn4DSGDW+4KhKa/amUg/VQmgsFF69bFj2/VSs6GxyDifEqvXPPx9"
    "N0ximYXhpaCj6niGvrWjowbgJarKwqNTMFEwHQYDVR0OBBYEFEDANUt4uahG57V2J/FcVnF1tNMOMB8GA1UdIwQY"
    "MBaAFEDANUt4uahG57V2J/FcVnF1tNMOMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgPbE7/ERm"
    "Id861iw5L0u2UIoraYt1evhhtjAeq3/u3O0CIAD5urVAuS3eDxETJV0N+9nG/Iqg+3gBQsE0tja8jA2d"
)


def ssh_public_key() -> bytes:
    return b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVrnN0eEkx2i3g8jTq6c8r7o0cd5uPw0r2XqBj0kF3s user@host\n"


def java_keystore() -> bytes:
    return (
        b"\xfe\xed\xfe\xed" + struct.pack(">II", 2, 1) + struct.pack(">I", 2) + b"\x00\x05alias" + filler(64)
    )


# --- Shortcuts and system files ------------------------------------------------------------


def lnk_shortcut() -> bytes:
    header = struct.pack("<I", 0x4C) + uuid.UUID("00021401-0000-0000-c000-000000000046").bytes_le
    header += struct.pack("<II", 0x81, 0x20) + b"\0" * 24 + struct.pack("<IIIHH", 0, 0, 1, 0, 0) + b"\0" * 8
    return header + struct.pack("<H", 0) + b"\0" * 64


def url_shortcut() -> bytes:
    return b"[InternetShortcut]\r\nURL=http://example.com/\r\nIconIndex=0\r\n"


def registry_hive() -> bytes:
    header = b"regf" + struct.pack("<IIQIIIII", 1, 1, 0, 1, 5, 0, 1, 0x20) + struct.pack("<II", 0x1000, 1)
    return header.ljust(4096, b"\0") + b"hbin" + struct.pack("<III", 0, 0x1000, 0) + b"\0" * 4080


def registry_export() -> bytes:
    lines = [
        "\ufeffWindows Registry Editor Version 5.00",
        "",
        "[HKEY_CURRENT_USER\\Software\\Test]",
        '"Value"="1"',
    ]
    return "\r\n".join([*lines, ""]).encode("utf-16-le")


def evtx() -> bytes:
    header = (
        b"ElfFile\0"
        + struct.pack("<QQQIHHHH", 0, 1, 2, 128, 1, 3, 4096, 1)
        + b"\0" * 76
        + struct.pack("<II", 1, 0)
    )
    return header.ljust(4096, b"\0") + b"ElfChnk\0" + b"\0" * 504


def evt() -> bytes:
    return (
        struct.pack("<I", 0x30)
        + b"LfLe"
        + struct.pack("<IIIIIIIIII", 1, 1, 0x30, 0x30, 1, 1, 0x10000, 0, 0, 0x30)
        + b"\0" * 64
    )


def prefetch() -> bytes:
    return (
        struct.pack("<I", 30)
        + b"SCCA"
        + struct.pack("<II", 17, 2048)
        + "CMD.EXE".encode("utf-16-le").ljust(60, b"\0")
        + filler(128)
    )


def minidump() -> bytes:
    return b"MDMP\x93\xa7\x00\x00" + struct.pack("<IIIIQ", 3, 32, 0, 0x5F000000, 0) + filler(128)


def pcap() -> bytes:
    packet = filler(60)
    return (b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 1700000000, 0, len(packet), len(packet)) + packet)  # fmt: skip


def pcapng() -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    section = (
        b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    )
    interface = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    return section + interface


def windows_help() -> bytes:
    return b"\x3f\x5f\x03\x00" + struct.pack("<iii", 16, -1, 4096) + filler(256)


def pdb() -> bytes:
    return (
        b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0" + struct.pack("<IIIII", 4096, 1, 8, 64, 0) + b"\0" * 256
    )


def binary_plist() -> bytes:
    return (
        b"bplist00\xd1\x01\x02Sk\x03Sval\x08\x0b\x0f"
        + b"\0" * 6
        + b"\x01\x01"
        + struct.pack(">QQQ", 3, 0, 0x13)
    )


def ds_store() -> bytes:
    return b"\x00\x00\x00\x01Bud1" + struct.pack(">IIII", 0x1000, 0x800, 0x1000, 0x0000100C) + b"\0" * 256


# --- The list -----------------------------------------------------------------------------

IDENTIFICATION_SAMPLES: list[tuple[str, str, Builder]] = [
    # Executables
    ("Installer", "MSI", msi_installer),
    ("PE", "Exe", lambda: pe_bytes()),
    ("PE", "Exe", lambda: pe_bytes(pe32plus=True, subsystem=SUBSYSTEM_GUI)),
    ("PE", "DLL", lambda: pe_bytes(dll=True)),
    ("PE", ".NET Exe", lambda: pe_bytes(dotnet=True)),
    ("PE", ".NET DLL", lambda: pe_bytes(dll=True, dotnet=True)),
    ("PE", "Driver", lambda: pe_bytes(pe32plus=True, subsystem=SUBSYSTEM_NATIVE)),
    ("PE", "EFI", lambda: pe_bytes(pe32plus=True, subsystem=SUBSYSTEM_EFI_APPLICATION)),
    ("DOS", "NE", ne_exe),
    ("DOS", "Exe", dos_exe),
    ("ELF", "Exe", lambda: elf_bytes(2)),
    ("ELF", "Library", lambda: elf_bytes(3)),
    ("ELF", "Object", lambda: elf_bytes(1)),
    ("ELF", "Core", lambda: elf_bytes(4)),
    ("ELF", "Other", lambda: elf_bytes(0xFF00)),
    ("MachO", "Universal", macho_universal),
    ("MachO", "Library", lambda: macho_bytes(MH_DYLIB)),
    ("MachO", "Object", lambda: macho_bytes(MH_OBJECT)),
    ("MachO", "Bundle", lambda: macho_bytes(MH_BUNDLE)),
    ("MachO", "Exe", lambda: macho_bytes(MH_EXECUTE)),
    ("COFF", "Object", coff_object),
    # Documents
    ("Document", "PDF", plain_pdf),
    ("Document", "RTF", rtf),
    ("Document", "Word", ole_word),
    ("Document", "Excel", ole_excel),
    ("Document", "PowerPoint", ole_powerpoint),
    (
        "Document",
        "Word",
        ooxml("word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"),
    ),
    (
        "Document",
        "Excel",
        ooxml("xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
    ),
    (
        "Document",
        "PowerPoint",
        ooxml("ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"),
    ),
    ("Document", "OOXML", ooxml("visio/", "application/vnd.ms-visio.drawing.main+xml")),
    ("Document", "OLE", ole_plain),
    ("Document", "EPS", eps),
    ("Document", "PostScript", postscript),
    ("Document", "DjVu", djvu),
    ("Document", "OneNote", onenote),
    ("Document", "WordPerfect", wordperfect),
    ("Document", "HWP", hwp3),
    ("Document", "MOBI", mobi),
    # Archives (rows of the archives family that predate the new sections)
    ("Archive", "ZIP", lambda: zip_bytes({"a.txt": b"hello"})),
    (
        "Archive",
        "JAR",
        lambda: zip_bytes({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "A.class": java_class()}),
    ),
    ("Archive", "TAR", lambda: tar_bytes({"a.txt": b"hello"})),
    ("Archive", "GZIP", lambda: gzip.compress(b"hello", mtime=0)),
    ("Archive", "BZIP2", lambda: __import__("bz2").compress(b"hello")),
    ("Archive", "XZ", lambda: __import__("lzma").compress(b"hello")),
    ("Archive", "7ZIP", lambda: b"7z\xbc\xaf\x27\x1c\x00\x04" + filler(64)),
    ("Archive", "RAR", lambda: b"Rar!\x1a\x07\x01\x00" + filler(64)),
    # Scripts and text
    ("Text", "PowerShell", text(b"#!/usr/bin/env pwsh\nWrite-Host 'hello'\n")),
    (
        "Text",
        "PowerShell",
        text(b"$c = New-Object Net.WebClient\nInvoke-Expression $c.DownloadString('x')\n"),
    ),
    ("Text", "VBScript", text(b'Dim shell\nSet shell = CreateObject("WScript.Shell")\nshell.Run "calc"\n')),
    ("Text", "Batch", text(b"@echo off\r\nset X=1\r\necho %X%\r\ngoto :eof\r\n")),
    ("Text", "Shell", text(b"#!/bin/sh\necho hello\nexit 0\n")),
    ("Text", "Python", text(b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv)\n")),
    ("Text", "Perl", text(b'#!/usr/bin/perl\nuse strict;\nprint "hello\\n";\n')),
    ("Text", "Ruby", text(b"#!/usr/bin/env ruby\nputs 'hello'\n")),
    ("Text", "PHP", text(b"<?php\necho 'hello';\n$x = $_GET['x'];\n?>\n")),
    ("Text", "Lua", text(b"#!/usr/bin/env lua\nprint('hello')\n")),
    ("Text", "Tcl", text(b"#!/usr/bin/tclsh\nputs hello\n")),
    ("Text", "AWK", text(b'#!/usr/bin/awk -f\nBEGIN { print "hello" }\n')),
    ("Text", "JavaScript", text(b"#!/usr/bin/env node\nconsole.log('hello');\n")),
    ("Text", "C", text(C_SOURCE)),
    ("Text", "C++", text(CPP_SOURCE)),
    ("Text", "Java", text(JAVA_SOURCE)),
    (
        "Text",
        "Makefile",
        text(b"CC = gcc\n\nall: main.o\n\t$(CC) -o main main.o\n\n.PHONY: all clean\nclean:\n\trm -f *.o\n"),
    ),
    (
        "Text",
        "Diff",
        text(b"diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n"),
    ),
    ("Text", "TeX", text(b"\\documentclass{article}\n\\begin{document}\nHello.\n\\end{document}\n")),
    ("Text", "Troff", text(b".TH TEST 1\n.SH NAME\ntest \\- a test\n.SH SYNOPSIS\n.B test\n")),
    (
        "Text",
        "HTML",
        text(b"<!DOCTYPE html>\n<html><head><title>t</title></head><body><p>hi</p></body></html>\n"),
    ),
    ("Text", "XML", text(b'<?xml version="1.0" encoding="UTF-8"?>\n<root><item id="1">x</item></root>\n')),
    ("Text", "JSON", text(b'{"name": "scanhub", "values": [1, 2, 3], "nested": {"a": true}}\n')),
    ("Text", "YAML", text(b"%YAML 1.2\n---\nname: scanhub\nvalues: [1, 2]\n")),
    (
        "Text",
        "Calendar",
        text(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ),
    ),
    ("Text", "vCard", text(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Test User\r\nEND:VCARD\r\n")),
    ("Text", "CSV", text(b"id,name,score\n1,alice,3.5\n2,bob,4.0\n3,carol,2.25\n")),
    ("Text", "None", text(b"Just some plain words in a text file and nothing else.\n" * 3)),
    # Images and media
    ("Image", "PNG", png),
    ("Image", "JPEG", jpeg),
    ("Image", "GIF", gif),
    ("Image", "BMP", bmp),
    ("Image", "TIFF", tiff),
    ("Image", "ICO", icon(1)),
    ("Image", "CUR", icon(2)),
    ("Image", "ANI", ani),
    ("Image", "WebP", webp),
    ("Image", "SVG", svg),
    ("Image", "PSD", psd),
    ("Image", "HEIC", iso_bmff(b"heic", b"mif1heic")),
    ("Image", "AVIF", iso_bmff(b"avif", b"mif1avif")),
    ("Image", "JPEG2000", jpeg2000),
    ("Image", "XCF", xcf),
    ("Image", "EMF", emf),
    ("Image", "WMF", wmf),
    ("Image", "DDS", dds),
    ("Image", "EXR", exr),
    ("Image", "QOI", qoi),
    ("Image", "JPEGXL", jpeg_xl),
    ("Image", "PNM", netpbm),
    ("Image", "XPM", xpm),
    ("Image", "ICNS", icns),
    ("Image", "DICOM", dicom),
    ("Image", "FITS", fits),
    ("Media", "MP3", mp3),
    ("Media", "WAV", wav),
    ("Media", "AVI", avi),
    ("Media", "MP4", iso_bmff(b"isom", b"isomiso2mp41")),
    ("Media", "MOV", iso_bmff(b"qt  ", b"qt  ")),
    ("Media", "M4A", iso_bmff(b"M4A ", b"M4A mp42isom")),
    ("Media", "3GP", iso_bmff(b"3gp4", b"3gp4isom")),
    ("Media", "MKV", mkv(b"matroska")),
    ("Media", "WebM", mkv(b"webm")),
    ("Media", "FLAC", flac),
    ("Media", "OGG", ogg),
    ("Media", "AIFF", aiff),
    ("Media", "AU", sun_audio),
    ("Media", "MIDI", midi),
    ("Media", "ASF", asf),
    ("Media", "FLV", flv),
    ("Media", "MPEG", mpeg_ps),
    ("Media", "MPEGTS", mpeg_ts),
    ("Media", "AMR", amr),
    ("Media", "AAC", aac),
    ("Media", "APE", ape),
    ("Media", "WavPack", wavpack),
    ("Media", "RealMedia", realmedia),
    ("Media", "CAF", caf),
    ("Media", "MOD", tracker_mod),
    ("Media", "XM", tracker_xm),
    ("Media", "S3M", tracker_s3m),
    ("Media", "VOC", creative_voice),
    # Fonts
    ("Font", "TrueType", lambda: sfnt(b"\x00\x01\x00\x00")),
    ("Font", "OpenType", lambda: sfnt(b"OTTO")),
    ("Font", "TrueTypeCollection", ttc),
    ("Font", "WOFF", woff(b"wOFF")),
    ("Font", "WOFF2", woff(b"wOF2")),
    ("Font", "EOT", eot),
    ("Font", "Type1", type1_font),
    ("Font", "PFB", pfb_font),
    ("Font", "BDF", bdf_font),
    ("Font", "PCF", pcf_font),
    # Databases
    ("Database", "SQLite", sqlite_database),
    ("Database", "Access", jet_database(b"Standard Jet DB")),
    ("Database", "AccessACE", jet_database(b"Standard ACE DB")),
    ("Database", "BerkeleyDB", berkeley_db),
    ("Database", "ESE", ese_database),
    ("Database", "KeePass", keepass),
    ("Email", "PST", outlook_pst),
    # Disk images and firmware
    ("Disk", "VHD", vhd),
    ("Disk", "VHDX", vhdx),
    ("Disk", "VMDK", vmdk),
    ("Disk", "QCOW2", qcow2),
    ("Disk", "VDI", vdi),
    ("Disk", "WIM", wim_image),
    ("Disk", "SquashFS", squashfs),
    ("Disk", "NTFS", ntfs_boot_sector),
    ("Disk", "FAT", fat_boot_sector),
    ("Disk", "Ext", ext_filesystem),
    ("Disk", "GPT", gpt),
    ("Disk", "MBR", mbr),
    ("Firmware", "UEFI", uefi_volume),
    ("Firmware", "IntelHex", intel_hex),
    ("Firmware", "UImage", uimage),
    ("Firmware", "AndroidBoot", android_boot),
    ("Firmware", "DTB", device_tree),
    # Certificates and keys
    ("Certificate", "PEM", pem("CERTIFICATE", base64.b64decode(CERTIFICATE_B64))),
    ("Certificate", "CSR", pem("CERTIFICATE REQUEST")),
    ("Certificate", "CRL", pem("X509 CRL")),
    ("Certificate", "PKCS7", pem("PKCS7")),
    ("Certificate", "DER", der_certificate),
    ("Key", "PrivateKey", pem("PRIVATE KEY")),
    ("Key", "PrivateKey", pem("RSA PRIVATE KEY")),
    ("Key", "PublicKey", pem("PUBLIC KEY")),
    ("Key", "OpenSSH", pem("OPENSSH PRIVATE KEY")),
    ("Key", "SSHPublic", ssh_public_key),
    ("Key", "JKS", java_keystore),
    ("PGP", "PublicKey", pem("PGP PUBLIC KEY BLOCK")),
    ("PGP", "PrivateKey", pem("PGP PRIVATE KEY BLOCK")),
    ("PGP", "Message", pem("PGP MESSAGE")),
    ("PGP", "Signature", pem("PGP SIGNATURE")),
    (
        "PGP",
        "Signed",
        text(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n-----BEGIN PGP SIGNATURE-----\n"),
    ),
    # Bytecode and packages
    ("Bytecode", "DEX", dex_bytes),
    ("Bytecode", "ODEX", odex_bytes),
    ("Bytecode", "JavaClass", java_class),
    ("Bytecode", "WebAssembly", webassembly),
    ("Bytecode", "Python", python_bytecode),
    ("Bytecode", "Lua", lua_bytecode),
    ("Bytecode", "LuaJIT", luajit_bytecode),
    ("Data", "JavaSerialized", java_serialized),
    ("Data", "Pickle", python_pickle),
    ("Flash", "SWF", flash(b"FWS")),
    ("Flash", "SWFZlib", flash(b"CWS")),
    ("Flash", "SWFLZMA", flash(b"ZWS")),
    ("Package", "CRX", crx_package),
    # Shortcuts and system files
    ("Shortcut", "LNK", lnk_shortcut),
    ("Shortcut", "URL", url_shortcut),
    ("Windows", "Registry", registry_hive),
    ("Windows", "RegistryExport", registry_export),
    ("Windows", "EVTX", evtx),
    ("Windows", "EVT", evt),
    ("Windows", "Prefetch", prefetch),
    ("Windows", "Minidump", minidump),
    ("Windows", "HLP", windows_help),
    ("Windows", "PDB", pdb),
    ("Network", "PCAP", pcap),
    ("Network", "PCAPNG", pcapng),
    ("Apple", "Plist", binary_plist),
    ("Apple", "DSStore", ds_store),
    # Generic fallbacks
    ("Image", "None", pcx),
    ("Media", "Audio", lambda: b"MPCK" + b"SH\x10" + filler(64)),
    ("Media", "Video", lambda: struct.pack("<IHHHHH", 4096, 0xAF11, 2, 320, 200, 8) + b"\0" * 116),
    ("None", "Empty", lambda: b""),
]
