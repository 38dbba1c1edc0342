"""File identification: libmagic's MIME type and description and our signatures, mapped by the
table in `filetypes.py` to report types; then refined by our own checks on the file (PE/ELF
subtypes, what a ZIP holds, scripts, compressed tarballs)."""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import Any

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.filetypes import classify_kind


@functools.cache
def _magic() -> tuple[Any, Any]:
    try:
        import magic
    except ImportError:
        # No system libmagic: use the copy that the pylibmagic wheel carries.
        import magic
        import pylibmagic  # noqa: F401
    return magic.Magic(mime=True), magic.Magic()


# libmagic's time grows with the buffer (its text tests read all of it); its binary
# signatures sit in the first few KiB.
MAGIC_BYTES = 16 * 1024


def identify(head: bytes) -> dict[str, str]:
    """Identify a file from its first bytes (libmagic needs no more than that)."""
    by_mime, by_description = _magic()
    mime_type = by_mime.from_buffer(head) if head else "inode/x-empty"
    description = by_description.from_buffer(head) if head else "empty"
    file_type, file_subtype = classify_kind(head, mime_type, description)
    return {
        "file_type": file_type,
        "file_subtype": file_subtype,
        "mime_type": mime_type,
        "description": description,
    }


# Our own checks where libmagic is vague: containers, executables and scripts.
MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
SCRIPT_SUFFIXES = {
    ".ps1": "PowerShell",
    ".psm1": "PowerShell",
    ".vbs": "VBScript",
    ".vbe": "VBScript",
    ".js": "JavaScript",
    ".jse": "JavaScript",
    ".bat": "Batch",
    ".cmd": "Batch",
    ".sh": "Shell",
    ".py": "Python",
    ".hta": "HTML",
}
SHEBANG_INTERPRETERS = (
    (b"python", "Python"),
    (b"perl", "Perl"),
    (b"ruby", "Ruby"),
    (b"node", "JavaScript"),
    (b"pwsh", "PowerShell"),
    (b"sh", "Shell"),
)
OOXML_KINDS = (("word/", "Word"), ("xl/", "Excel"), ("ppt/", "PowerPoint"))
ODF_MIME_PREFIX = "application/vnd.oasis.opendocument."
ODF_KINDS = (("text", "ODT"), ("spreadsheet", "ODS"), ("presentation", "ODP"))
IMAGE_FILE_DLL = 0x2000
COM_DESCRIPTOR_DIRECTORY = 14


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
    tags = (["dll"] if is_dll else ["exe"]) + (["dotnet"] if dotnet else [])
    subtype = ("DLL" if is_dll else "Exe") if not dotnet else (".NET DLL" if is_dll else ".NET Exe")
    return subtype, tags


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


def zip_subtype(path: Path) -> tuple[str, str, list[str]] | None:
    """Office Open XML, JAR or APK by the names in the zip's central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:5000]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
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
    if "mimetype" in name_set and (odf := odf_subtype(archive_mimetype(path))) is not None:
        return "Document", odf, ["odf"]
    if "META-INF/MANIFEST.MF" in name_set or any(name.endswith(".class") for name in names[:200]):
        return "Archive", "JAR", ["jar"]
    return None


def archive_mimetype(path: Path) -> str:
    """The `mimetype` member of an OpenDocument package (its first 100 bytes)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("mimetype") as member:
            return member.read(100).decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, KeyError, EOFError, zlib.error):
        return ""


def odf_subtype(mimetype: str) -> str | None:
    if not mimetype.startswith(ODF_MIME_PREFIX):
        return None
    kind = mimetype[len(ODF_MIME_PREFIX) :]
    for prefix, subtype in ODF_KINDS:
        if kind.startswith(prefix):
            return subtype
    return "ODF"


def script_subtype(head: bytes, file_name: str) -> str | None:
    first_line = head.split(b"\n", 1)[0]
    if first_line.startswith(b"#!"):
        for needle, kind in SHEBANG_INTERPRETERS:
            if needle in first_line:
                return kind
        return "Shell"
    suffix = Path(file_name).suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        return SCRIPT_SUFFIXES[suffix]
    lowered = head[:8192].lower()
    if b"-encodedcommand" in lowered or b"new-object" in lowered or b"invoke-expression" in lowered:
        return "PowerShell"
    if b"wscript." in lowered or b"createobject(" in lowered:
        return "VBScript"
    return None


TAR_MAGIC_OFFSET = 257
COMPRESSED_TAR_OPENERS: dict[str, Any] = {
    "GZIP": lambda buffer: gzip.GzipFile(fileobj=buffer),
    "BZIP2": bz2.BZ2File,
    "XZ": lzma.LZMAFile,
}


def holds_tar(head: bytes, compression: str) -> bool:
    """Whether a compressed stream starts with a tar header (a .tgz, .tar.bz2, .tar.xz...)."""
    opener = COMPRESSED_TAR_OPENERS.get(compression)
    if opener is None:
        return False
    try:
        with opener(io.BytesIO(head)) as stream:
            block = stream.read(512)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return False
    return len(block) == 512 and block[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar"


def refine(context: FileContext) -> Findings:
    """Analyzer: sharpen libmagic's identification of the file in `context`."""
    head, identity = context.head, context.identity
    found: tuple[str, str] | None = None
    tags: list[str] = []
    if head.startswith(b"MZ") and (pe := pe_subtype(head)) is not None:
        found, tags = ("PE", pe[0]), pe[1]
    elif head.startswith(b"\x7fELF") and (elf := elf_subtype(head)) is not None:
        found = ("ELF", elf)
    elif head[:4] in MACHO_MAGICS:
        found = ("MachO", "Exe")
    elif b"%PDF-" in head[:1024]:
        found = ("Document", "PDF")
    elif head.startswith(b"PK\x03\x04") and (zipped := zip_subtype(context.path)) is not None:
        found, tags = (zipped[0], zipped[1]), zipped[2]
    elif identity["file_type"] == "Text" and (script := script_subtype(head, context.file_name)):
        found, tags = ("Text", script), ["script"]
    elif identity["file_type"] == "Archive" and holds_tar(head, identity["file_subtype"]):
        tags = ["compressed-tar"]
    if found is None or found == (identity["file_type"], identity["file_subtype"]):
        return {"tags": tags} if tags else {}
    return {"identity": {"file_type": found[0], "file_subtype": found[1]}, "tags": tags}


ANALYZER = Analyzer(name="identify", version="1", run=refine)
