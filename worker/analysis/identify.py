"""File identification: libmagic's MIME type and description and our signatures, mapped by the
table in `filetypes.py` to report types; then refined by our own checks on the file (PE, ELF
and Mach-O subtypes, the class id of an OLE file, what a ZIP holds, scripts, compressed
tarballs of every flavour)."""

from __future__ import annotations

import functools
import itertools
import struct
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyzipper

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.decoders.streams import STREAM_ERRORS, open_stream
from worker.analysis.extractors.zipdirectory import StreamingZipFile
from worker.analysis.filetypes import SHEBANG_KINDS, classify_kind

# libmagic's flag (magic.h) that skips the tests of its magic database ("soft" magic) and
# keeps its built-in ones: compressed data, tar, JSON, CSV, CDF, ELF and the text encodings.
MAGIC_NO_CHECK_SOFT = 0x4000


@dataclass(frozen=True)
class Libmagic:
    """libmagic, asked four ways: MIME type and description, each with and without the tests
    of its database."""

    mime: Any
    description: Any
    builtin_mime: Any
    builtin_description: Any


@functools.cache
def _magic() -> Libmagic:
    try:
        import magic
    except ImportError:
        # No system libmagic: use the copy that the pylibmagic wheel carries. Importing
        # pylibmagic first points ctypes and $MAGIC at that copy; then python-magic finds it.
        import pylibmagic  # noqa: F401

        # isort: split
        import magic

    def builtin_only(cookie: Any) -> Any:
        cookie.flags |= MAGIC_NO_CHECK_SOFT
        magic.magic_setflags(cookie.cookie, cookie.flags)
        return cookie

    return Libmagic(
        mime=magic.Magic(mime=True),
        description=magic.Magic(),
        builtin_mime=builtin_only(magic.Magic(mime=True)),
        builtin_description=builtin_only(magic.Magic()),
    )


# libmagic's time grows with the buffer (its text tests read all of it); its binary
# signatures sit in the first few KiB.
MAGIC_BYTES = 16 * 1024


def libmagic_answers(head: bytes) -> tuple[str, str]:
    """libmagic's (MIME type, description) of `head`, as two full calls would give them.

    A full call costs little on binary data, where the database's tests stop at the first
    signature, but several milliseconds on text that no test names, where every text test
    (many of them regular expressions over the whole buffer) runs and fails. So the
    description is asked in full first; if it is one libmagic's built-in checks give too
    (plain text of an encoding, JSON, CSV, or "data"), no database test matched, and the
    MIME type comes from a call without them, which cannot differ. Anything else (the
    database named the file) gets the full MIME call.
    """
    if not head:
        return "inode/x-empty", "empty"
    libmagic = _magic()
    description = libmagic.description.from_buffer(head)
    if ("text" in description or description == "data") and (
        libmagic.builtin_description.from_buffer(head) == description
    ):
        return libmagic.builtin_mime.from_buffer(head), description
    return libmagic.mime.from_buffer(head), description


def identify(head: bytes) -> dict[str, str]:
    """Identify a file from its first bytes: libmagic reads `MAGIC_BYTES` of them, the table's
    signatures all of `head` (an ISO 9660 volume descriptor sits at 32 KiB)."""
    mime_type, description = libmagic_answers(head[:MAGIC_BYTES])
    file_type, file_subtype = classify_kind(head, mime_type, description)
    return {
        "file_type": file_type,
        "file_subtype": file_subtype,
        "mime_type": mime_type,
        "description": description,
    }


# Our own checks where libmagic is vague: containers, executables and scripts.
MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
MACHO_FILE_TYPES = {1: "Object", 2: "Exe", 6: "Library", 8: "Bundle"}
SCRIPT_SUFFIXES = {
    ".ps1": "PowerShell",
    ".psm1": "PowerShell",
    ".psd1": "PowerShell",
    ".vbs": "VBScript",
    ".vbe": "VBScript",
    ".js": "JavaScript",
    ".jse": "JavaScript",
    ".mjs": "JavaScript",
    ".bat": "Batch",
    ".cmd": "Batch",
    ".sh": "Shell",
    ".bash": "Shell",
    ".py": "Python",
    ".pyw": "Python",
    ".pl": "Perl",
    ".pm": "Perl",
    ".rb": "Ruby",
    ".php": "PHP",
    ".lua": "Lua",
    ".tcl": "Tcl",
    ".awk": "AWK",
    ".hta": "HTML",
    ".csv": "CSV",
    ".ini": "INI",
    ".inf": "INI",
    ".service": "INI",
    ".desktop": "INI",
    ".cfg": "INI",
    ".toml": "TOML",
    ".css": "CSS",
    ".rst": "RST",
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".yml": "YAML",
    ".yaml": "YAML",
    ".sql": "SQL",
}
# Text kinds that libmagic names itself: a suffix does not override them (a .txt holding
# C source stays C), only generic text is refined by a suffix or by what the text says.
GENERIC_TEXT = ("None", "CSV")
# Names looked at to tell OOXML, JAR and APK apart; a hostile directory may hold far more.
ZIP_NAMES_READ = 5000
OOXML_KINDS = (("word/", "Word"), ("xl/", "Excel"), ("ppt/", "PowerPoint"))
ODF_MIME_PREFIX = "application/vnd.oasis.opendocument."
ODF_KINDS = (("text", "ODT"), ("spreadsheet", "ODS"), ("presentation", "ODP"))
IMAGE_FILE_DLL = 0x2000
COM_DESCRIPTOR_DIRECTORY = 14
SUBSYSTEM_NATIVE = 1
SUBSYSTEMS_EFI = (10, 11, 12, 13)
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
# Root-storage class ids (as stored, little-endian GUIDs) of OLE files libmagic may call
# plain "Composite Document File": installers and Office documents.
OLE_CLASS_IDS = {
    "000c1084-0000-0000-c000-000000000046": ("Installer", "MSI"),
    "000c1086-0000-0000-c000-000000000046": ("Installer", "MSI"),  # patch (.msp)
    "000c1082-0000-0000-c000-000000000046": ("Installer", "MSI"),  # transform (.mst)
    "00020906-0000-0000-c000-000000000046": ("Document", "Word"),
    "00020900-0000-0000-c000-000000000046": ("Document", "Word"),
    "00020820-0000-0000-c000-000000000046": ("Document", "Excel"),
    "00020810-0000-0000-c000-000000000046": ("Document", "Excel"),
    "64818d10-4f9b-11cf-86ea-00aa00b929e8": ("Document", "PowerPoint"),
    "64818d11-4f9b-11cf-86ea-00aa00b929e8": ("Document", "PowerPoint"),
}


def pe_subtype(head: bytes) -> tuple[str, list[str]] | None:
    """Exe / DLL, native or .NET, from the PE headers in the first bytes."""
    if len(head) < 64 or not head.startswith(b"MZ"):
        return None
    pe_offset = int.from_bytes(head[0x3C:0x40], "little")
    if pe_offset + 24 > len(head) or head[pe_offset : pe_offset + 4] != b"PE\0\0":
        return None
    characteristics = int.from_bytes(head[pe_offset + 22 : pe_offset + 24], "little")
    optional = pe_offset + 24
    magic = int.from_bytes(head[optional : optional + 2], "little")
    directories = optional + (96 if magic == 0x10B else 112)
    com_entry = directories + COM_DESCRIPTOR_DIRECTORY * 8
    dotnet = False
    if com_entry + 8 <= len(head):
        dotnet = int.from_bytes(head[com_entry : com_entry + 4], "little") != 0
    is_dll = bool(characteristics & IMAGE_FILE_DLL)
    subsystem = int.from_bytes(head[optional + 68 : optional + 70], "little")
    tags = (["dll"] if is_dll else ["exe"]) + (["dotnet"] if dotnet else [])
    if dotnet:
        subtype = ".NET DLL" if is_dll else ".NET Exe"
    elif subsystem == SUBSYSTEM_NATIVE:
        subtype, tags = "Driver", [*tags, "driver"]
    elif subsystem in SUBSYSTEMS_EFI:
        subtype, tags = "EFI", [*tags, "efi"]
    else:
        subtype = "DLL" if is_dll else "Exe"
    return subtype, tags


def mz_subtype(head: bytes) -> tuple[str, str] | None:
    """A DOS-header file that is not PE: 16-bit Windows (NE) or plain DOS."""
    if len(head) < 64 or not head.startswith(b"MZ"):
        return None
    offset = int.from_bytes(head[0x3C:0x40], "little")
    if head[offset : offset + 2] == b"NE":
        return "DOS", "NE"
    return None


def macho_subtype(head: bytes) -> str:
    order = "little" if head[:4] in (b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe") else "big"
    return MACHO_FILE_TYPES.get(int.from_bytes(head[12:16], order), "Exe")  # type: ignore[arg-type]


def ole_class(head: bytes) -> tuple[str, str] | None:
    """What the class id of an OLE file's root storage says it is (MSI, Word...), if known."""
    if not head.startswith(OLE_MAGIC) or len(head) < 512:
        return None
    sector_size = 1 << int.from_bytes(head[0x1E:0x20], "little")
    first_directory_sector = int.from_bytes(head[0x30:0x34], "little")
    root = (first_directory_sector + 1) * sector_size
    if sector_size not in (512, 4096) or root + 96 > len(head):
        return None
    class_id = str(uuid.UUID(bytes_le=head[root + 80 : root + 96]))
    return OLE_CLASS_IDS.get(class_id)


def elf_subtype(head: bytes) -> str | None:
    if len(head) < 20 or not head.startswith(b"\x7fELF"):
        return None
    order = "little" if head[5] == 1 else "big"
    elf_type = int.from_bytes(head[16:18], order)  # type: ignore[arg-type]
    if elf_type == 2:
        return "Exe"
    if elf_type == 3:
        # Position-independent executables are ET_DYN too; they name an interpreter.
        return "Exe" if b"ld-linux" in head[:4096] or b"/ld-" in head[:4096] else "Library"
    return {1: "Object", 4: "Core"}.get(elf_type, "Other")


ZIP_ERRORS = (
    zipfile.BadZipFile,
    pyzipper.BadZipFile,
    OSError,
    ValueError,
    NotImplementedError,
    struct.error,
    EOFError,
    zlib.error,
    RuntimeError,
)


def zip_subtype(path: Path) -> tuple[str, str, list[str]] | None:
    """Office Open XML, OpenDocument, JAR or APK by the names in the zip's central directory
    (at most ZIP_NAMES_READ of them) and an OpenDocument's `mimetype` member."""
    mimetype = ""
    try:
        with StreamingZipFile(path) as archive:
            names = []
            for entry in itertools.islice(archive.entries(), ZIP_NAMES_READ):
                names.append(entry.filename)
                if entry.filename == "mimetype" and not entry.flag_bits & 0x1:
                    with archive.open(entry) as member:
                        mimetype = member.read(100).decode("ascii", "replace").strip()
    except ZIP_ERRORS:
        return None
    name_set = set(names)
    if "AndroidManifest.xml" in name_set and any(name.endswith(".dex") for name in names):
        return "Archive", "APK", ["apk"]
    if "[Content_Types].xml" in name_set:
        tags = ["ooxml"] + (["macro"] if any(n.lower().endswith("vbaproject.bin") for n in names) else [])
        for prefix, kind in OOXML_KINDS:
            if any(name.startswith(prefix) for name in names):
                return "Document", kind, tags
        return "Document", "OOXML", tags
    if (odf := odf_subtype(mimetype)) is not None:
        return "Document", odf, ["odf"]
    if "META-INF/MANIFEST.MF" in name_set or any(name.endswith(".class") for name in names[:200]):
        return "Archive", "JAR", ["jar"]
    return None


def odf_subtype(mimetype: str) -> str | None:
    if not mimetype.startswith(ODF_MIME_PREFIX):
        return None
    kind = mimetype[len(ODF_MIME_PREFIX) :]
    for prefix, subtype in ODF_KINDS:
        if kind.startswith(prefix):
            return subtype
    return "ODF"


def shebang_subtype(first_line: bytes) -> str:
    """The Text subtype a shebang line's interpreter means (`#!/usr/bin/env python3` -> Python)."""
    words = first_line[2:].decode("latin-1").split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        words = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
    if not words:
        return "Shell"
    interpreter = words[0].rsplit("/", 1)[-1].rstrip("0123456789.")
    return SHEBANG_KINDS.get(interpreter, "Shell")


def script_subtype(head: bytes, file_name: str, generic: bool) -> str | None:
    """The script language of a text file: shebang, then suffix or content cues for generic text."""
    first_line = head.split(b"\n", 1)[0]
    if first_line.startswith(b"#!"):
        return shebang_subtype(first_line)
    if not generic:
        return None
    suffix = Path(file_name).suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        return SCRIPT_SUFFIXES[suffix]
    lowered = head[:8192].lower()
    if b"-encodedcommand" in lowered or b"new-object" in lowered or b"invoke-expression" in lowered:
        return "PowerShell"
    if b"wscript." in lowered or b"createobject(" in lowered:
        return "VBScript"
    return None


COMPRESSED_KINDS = ("GZIP", "BZIP2", "XZ", "LZMA", "ZSTD", "LZ4", "COMPRESS")


def is_tar_header(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header of any flavour (v7, ustar, GNU, pax): its checksum holds."""
    if len(block) != tarfile.BLOCKSIZE or not block.strip(b"\0"):
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def holds_tar(path: Path, compression: str) -> bool:
    """Whether a compressed stream starts with a tar header (a .tgz, .tar.zst, .tar.Z...).

    Only the first 512 decompressed bytes are decoded: at most one block of the format.
    """
    if compression not in COMPRESSED_KINDS:
        return False
    try:
        with path.open("rb") as raw, open_stream(compression, raw) as stream:
            block = stream.read(tarfile.BLOCKSIZE)
    except STREAM_ERRORS:
        return False
    return is_tar_header(block)


def refine(context: FileContext) -> Findings:
    """Analyzer: sharpen libmagic's identification of the file in `context`."""
    head, identity = context.head, context.identity
    found: tuple[str, str] | None = None
    tags: list[str] = []
    if head.startswith(b"MZ") and (pe := pe_subtype(head)) is not None:
        found, tags = ("PE", pe[0]), pe[1]
    elif head.startswith(b"MZ") and (dos := mz_subtype(head)) is not None:
        found = dos
    elif head.startswith(b"\x7fELF") and (elf := elf_subtype(head)) is not None:
        found = ("ELF", elf)
    elif head[:4] in MACHO_MAGICS:
        found = ("MachO", macho_subtype(head))
    elif b"%PDF-" in head[:1024]:
        found = ("Document", "PDF")
    elif head.startswith(OLE_MAGIC) and (ole := ole_class(head)) is not None:
        found = ole
    elif head.startswith(b"PK\x03\x04") and (zipped := zip_subtype(context.path)) is not None:
        found, tags = (zipped[0], zipped[1]), zipped[2]
    elif identity["file_type"] == "Text" and (
        script := script_subtype(head, context.file_name, identity["file_subtype"] in GENERIC_TEXT)
    ):
        found, tags = ("Text", script), ["script"]
    elif identity["file_type"] == "Archive" and holds_tar(context.path, identity["file_subtype"]):
        tags = ["compressed-tar"]
    if found is None or found == (identity["file_type"], identity["file_subtype"]):
        return {"tags": tags} if tags else {}
    return {"identity": {"file_type": found[0], "file_subtype": found[1]}, "tags": tags}


ANALYZER = Analyzer(name="identify", version="1", run=refine)
