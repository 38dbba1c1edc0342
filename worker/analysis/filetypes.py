"""The identification table: every file type/subtype scanhub reports, and how each is recognised.

One row per type/subtype pair, grouped by family; the first row that matches wins, so
specific rows come before general ones. A row matches a file when any of its criteria does:

- `magic`: byte signatures, each `(offset, bytes)`; all pairs of one signature must match
  (several signatures: any of them);
- `mime`: libmagic MIME types (exact), or prefixes ending in `/` or `*`;
- `description`: a regular expression searched in libmagic's description;
- `header`: a regular expression on bytes, matched at the start of the file (for headers
  with a variable part, such as PEM labels or shebang lines).

`libmagic` is asked once per file (MIME type and description); our signatures cover what
it misses or names vaguely, and what it names differently from one version to the next
(so most rows carry a signature, and libmagic is their second opinion). Generic rows
(`text/`, `image/`, `audio/`, `video/`) come last. Every row has a test on a sample the
tests build (`samples/*.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Signature = tuple[tuple[int, bytes], ...]


@dataclass(frozen=True)
class FileKind:
    file_type: str
    file_subtype: str
    magic: tuple[Signature, ...] = ()
    mime: tuple[str, ...] = ()
    description: str = ""
    header: bytes = b""
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    header_pattern: re.Pattern[bytes] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.description:
            object.__setattr__(self, "pattern", re.compile(self.description, re.IGNORECASE))
        if self.header:
            object.__setattr__(self, "header_pattern", re.compile(self.header, re.DOTALL))

    def matches(self, head: bytes, mime_type: str, description: str) -> bool:
        for signature in self.magic:
            for offset, value in signature:
                if not head.startswith(value, offset):
                    break
            else:
                return True
        for wanted in self.mime:
            if wanted.endswith(("/", "*")):
                if mime_type.startswith(wanted.rstrip("*")):
                    return True
            elif mime_type == wanted:
                return True
        if self.header_pattern is not None and self.header_pattern.match(head):
            return True
        return self.pattern is not None and self.pattern.search(description) is not None


def sig(*parts: tuple[int, bytes]) -> Signature:
    return parts


def at0(*values: bytes) -> tuple[Signature, ...]:
    """Signatures at offset 0, any of `values`."""
    return tuple(((0, value),) for value in values)


def at(offset: int, value: bytes) -> tuple[Signature, ...]:
    return (((offset, value),),)


# Script interpreters named on a shebang line (`#!/usr/bin/perl`, `#!/usr/bin/env -S node`),
# as the Text subtype each means; `identify.refine` reads the same table.
SHEBANG_KINDS: dict[str, str] = {
    "pwsh": "PowerShell",
    "powershell": "PowerShell",
    "python": "Python",
    "perl": "Perl",
    "ruby": "Ruby",
    "node": "JavaScript",
    "nodejs": "JavaScript",
    "deno": "JavaScript",
    "php": "PHP",
    "lua": "Lua",
    "tclsh": "Tcl",
    "wish": "Tcl",
    "awk": "AWK",
    "gawk": "AWK",
    "mawk": "AWK",
    "sh": "Shell",
    "bash": "Shell",
    "dash": "Shell",
    "zsh": "Shell",
    "ksh": "Shell",
    "ash": "Shell",
}
SHEBANG = rb"#![ \t]*\S*/(?:env[ \t]+(?:-\S+[ \t]+)*)?"


def shebang(kind: str) -> bytes:
    """A `header` pattern for a shebang line naming an interpreter of `kind` (python3.11 too)."""
    names = sorted((name for name, value in SHEBANG_KINDS.items() if value == kind), key=len, reverse=True)
    return SHEBANG + rb"(?:" + b"|".join(re.escape(name.encode()) for name in names) + rb")[\d.]*(?=\s)"


def pem(*labels: str) -> bytes:
    """A `header` pattern for PEM armour with one of `labels` (`-----BEGIN CERTIFICATE-----`)."""
    return rb"\s*-----BEGIN (?:" + b"|".join(re.escape(label.encode()) for label in labels) + rb")-----"


# Mach-O headers: magic, then (at 12) the file type, in the header's byte order.
MACHO_MAGICS_LE = (b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
MACHO_MAGICS_BE = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf")


def macho(filetype: int) -> tuple[Signature, ...]:
    """Mach-O headers (32/64-bit, either byte order) of one file type (MH_EXECUTE, MH_DYLIB...)."""
    little = tuple(((0, magic), (12, filetype.to_bytes(4, "little"))) for magic in MACHO_MAGICS_LE)
    big = tuple(((0, magic), (12, filetype.to_bytes(4, "big"))) for magic in MACHO_MAGICS_BE)
    return little + big


KINDS: tuple[FileKind, ...] = (
    # Executables
    # MSI before Document/OLE: an OLE file whose root storage has the MSI class id.
    FileKind("Installer", "MSI", (), ("application/x-msi",), r"MSI Installer"),
    # PE subtypes: libmagic reads the headers; `identify.refine` checks the same from the bytes.
    FileKind("PE", ".NET DLL", (), (), r"PE32\+? executable \(DLL\).*Mono/\.Net assembly"),
    FileKind("PE", ".NET Exe", (), (), r"PE32\+? executable .*Mono/\.Net assembly"),
    FileKind("PE", "Driver", (), (), r"PE32\+? executable (?:\(DLL\) )?\(native\)"),
    FileKind("PE", "EFI", (), (), r"PE32\+? executable (?:\(DLL\) )?\(EFI "),
    FileKind("PE", "DLL", (), (), r"PE32\+? executable \(DLL\)"),
    # An MZ file without a PE header: DOS, or 16-bit Windows (NE).
    FileKind("DOS", "NE", (), ("application/x-ms-ne-executable",), r"^MS-DOS executable, NE\b"),
    FileKind("DOS", "Exe", (), (), r"^MS-DOS executable(?!.*\bPE32)"),
    FileKind(
        "PE", "Exe", at0(b"MZ"), ("application/x-dosexec", "application/vnd.microsoft.portable-executable")
    ),
    FileKind("ELF", "Exe", (), ("application/x-executable", "application/x-pie-executable")),
    FileKind("ELF", "Library", (), ("application/x-sharedlib",)),
    FileKind("ELF", "Object", (), ("application/x-object",)),
    FileKind("ELF", "Core", (), ("application/x-coredump",)),
    FileKind("ELF", "Other", at0(b"\x7fELF")),
    # A fat binary's slice count is small; a Java class (same magic) has a major version >= 45.
    FileKind("MachO", "Universal", header=rb"\xca\xfe\xba[\xbe\xbf]\x00\x00\x00[\x01-\x14]"),
    FileKind("MachO", "Library", macho(6)),
    FileKind("MachO", "Object", macho(1)),
    FileKind("MachO", "Bundle", macho(8)),
    FileKind("MachO", "Exe", at0(*MACHO_MAGICS_LE, *MACHO_MAGICS_BE), ("application/x-mach-binary",)),
    FileKind("COFF", "Object", (), ("application/x-coff",), r"COFF object file"),
    # Compiled AutoIt script (.a3x): the script GUID, then the format version.
    FileKind(
        "Binary",
        "AutoIt",
        (
            sig((0, bytes.fromhex("A3484BBE986C4AA9994C530A86D6487D")), (16, b"AU3!EA06")),
            sig((0, bytes.fromhex("A3484BBE986C4AA9994C530A86D6487D")), (16, b"AU3!EA05")),
        ),
    ),
    # Documents
    FileKind("Document", "PDF", at0(b"%PDF-"), ("application/pdf",)),
    FileKind("Document", "RTF", at0(b"{\\rt"), ("application/rtf", "text/rtf")),
    FileKind("Document", "Word", (), ("application/msword",)),
    FileKind("Document", "Excel", (), ("application/vnd.ms-excel",)),
    FileKind("Document", "PowerPoint", (), ("application/vnd.ms-powerpoint",)),
    FileKind("Document", "Word", (), ("application/vnd.openxmlformats-officedocument.wordprocessingml*",)),
    FileKind("Document", "Excel", (), ("application/vnd.openxmlformats-officedocument.spreadsheetml*",)),
    FileKind(
        "Document", "PowerPoint", (), ("application/vnd.openxmlformats-officedocument.presentationml*",)
    ),
    # Other OOXML packages (Visio, XPS-like): libmagic names a few; `refine` reads the zip.
    FileKind("Document", "OOXML", (), ("application/vnd.ms-visio*",), r"^Microsoft OOXML|Microsoft Visio 20"),
    FileKind("Document", "ODT", (), ("application/vnd.oasis.opendocument.text*",)),
    FileKind("Document", "ODS", (), ("application/vnd.oasis.opendocument.spreadsheet*",)),
    FileKind("Document", "ODP", (), ("application/vnd.oasis.opendocument.presentation*",)),
    FileKind("Document", "ODF", (), ("application/vnd.oasis.opendocument.*",)),
    # Outlook messages are OLE files: this row of "Mail and encodings" must precede the OLE one.
    # By description only: libmagic gives PST files the same MIME type.
    FileKind("Email", "MSG", (), (), r"Microsoft Outlook Message"),
    FileKind(
        "Document",
        "OLE",
        at0(bytes.fromhex("D0CF11E0A1B11AE1")),
        ("application/x-ole-storage", "application/CDFV2"),
    ),
    FileKind(
        "Document",
        "EPS",
        at0(b"\xc5\xd0\xd3\xc6"),
        (),
        r"PostScript document.*type EPS",
        rb"%!PS-Adobe-\d\.\d EPSF",
    ),
    # Type 1 fonts start with "%!PS-AdobeFont" or "%!FontType1": not documents.
    FileKind("Document", "PostScript", (), ("application/postscript",), "", rb"%!PS(?!-AdobeFont)"),
    FileKind("Document", "DjVu", (((0, b"AT&TFORM"), (12, b"DJV")),), ("image/vnd.djvu",)),
    FileKind("Document", "OneNote", at0(bytes.fromhex("E4525C7B8CD8A74DAEB15378D02996D3"))),
    FileKind("Document", "WordPerfect", at0(b"\xffWPC"), ("application/vnd.wordperfect",)),
    FileKind("Document", "HWP", at0(b"HWP Document File"), (), r"^Hangul \(Korean\) Word Processor"),
    FileKind(
        "Document", "MOBI", (*at(60, b"BOOKMOBI"), *at(60, b"TEXtREAd")), ("application/x-mobipocket-ebook",)
    ),
    # Archives and compression
    FileKind("Archive", "ZIP", at0(b"PK\x03\x04"), ("application/zip",)),
    FileKind("Archive", "JAR", (), ("application/java-archive",)),
    FileKind("Archive", "TAR", (((257, b"ustar"),),), ("application/x-tar",)),
    FileKind("Archive", "GZIP", at0(b"\x1f\x8b"), ("application/gzip", "application/x-gzip")),
    FileKind("Archive", "BZIP2", at0(b"BZh"), ("application/x-bzip2",)),
    FileKind("Archive", "XZ", at0(b"\xfd7zXZ\x00"), ("application/x-xz",)),
    FileKind("Archive", "ZSTD", at0(b"\x28\xb5\x2f\xfd"), ("application/zstd",)),
    FileKind("Archive", "LZ4", at0(b"\x04\x22\x4d\x18"), ("application/x-lz4",)),
    # .lzma ("LZMA alone"): properties byte 0x5D (the usual lc/lp/pb), then the dictionary size.
    FileKind("Archive", "LZMA", at0(b"\x5d\x00\x00"), ("application/x-lzma",)),
    FileKind("Archive", "COMPRESS", at0(b"\x1f\x9d"), ("application/x-compress",)),
    FileKind("Archive", "ARJ", at0(b"\x60\xea"), ("application/x-arj",)),
    FileKind(
        "Archive", "LZH", (sig((2, b"-l"), (6, b"-")),), ("application/x-lzh-compressed", "application/x-lha")
    ),
    FileKind("Archive", "7ZIP", at0(b"7z\xbc\xaf\x27\x1c"), ("application/x-7z-compressed",)),
    FileKind(
        "Archive",
        "RAR",
        (*at0(b"Rar!\x1a\x07\x00"), *at0(b"Rar!\x1a\x07\x01\x00")),
        ("application/x-rar", "application/vnd.rar"),
    ),
    FileKind("Archive", "CAB", at0(b"MSCF\0\0\0\0"), ("application/vnd.ms-cab-compressed",)),
    FileKind("Archive", "CHM", at0(b"ITSF"), ("application/vnd.ms-htmlhelp",)),
    # UDF's extended-area descriptor follows the ISO 9660 descriptors of a bridge image.
    FileKind(
        "Archive",
        "UDF",
        tuple(((sector * 2048 + 1, b"BEA01"),) for sector in range(16, 24)),
        ("application/x-udf-image",),
        r"^UDF filesystem",
    ),
    FileKind("Archive", "ISO", (((0x8001, b"CD001"),),), ("application/x-iso9660-image",)),
    FileKind("Archive", "RPM", at0(b"\xed\xab\xee\xdb"), ("application/x-rpm",)),
    FileKind(
        "Archive", "DEB", (((0, b"!<arch>\ndebian-binary"),),), ("application/vnd.debian.binary-package",)
    ),
    FileKind("Archive", "AR", at0(b"!<arch>\n"), ("application/x-archive",)),
    FileKind("Archive", "SZDD", at0(b"SZDD\x88\xf0\x27\x33"), ("application/x-ms-compress-szdd",)),
    FileKind("Archive", "KWAJ", at0(b"KWAJ\x88\xf0\x27\xd1"), ("application/x-ms-compress-kwaj",)),
    # newc, crc, odc, then binary in either byte order (a two-byte magic: last).
    FileKind(
        "Archive",
        "CPIO",
        (*at0(b"070701"), *at0(b"070702"), *at0(b"070707"), *at0(b"\xc7\x71"), *at0(b"\x71\xc7")),
        ("application/x-cpio",),
    ),
    # Mail and encodings
    FileKind("Email", "MBOX", at0(b"From "), ("application/mbox",)),
    FileKind(
        "Email",
        "EML",
        tuple(
            ((0, header),)
            for header in (
                b"Received: ",
                b"Return-Path: ",
                b"Delivered-To: ",
                b"MIME-Version: ",
                b"X-Mozilla-Status",
            )
        ),
        ("message/rfc822",),
        r"^(RFC 822 mail|SMTP mail|news or mail|MIME entity)",
    ),
    FileKind("Email", "TNEF", at0(bytes.fromhex("789F3E22")), ("application/vnd.ms-tnef",)),
    FileKind(
        "Text",
        "UUE",
        tuple(
            ((0, b"begin %s " % mode),) for mode in (b"644", b"664", b"666", b"600", b"640", b"755", b"777")
        )
        + at0(b"begin-base64 "),
        ("text/x-uuencode",),
        r"uuencoded",
    ),
    FileKind(
        "Text",
        "BinHex",
        at0(b"(This file must be converted with BinHex"),
        ("application/mac-binhex40",),
        "BinHex",
    ),
    # Scripts and text
    # A shebang names the interpreter whatever libmagic's version calls the file.
    FileKind("Text", "PowerShell", header=shebang("PowerShell")),
    FileKind("Text", "Shell", (), ("text/x-shellscript",), "", shebang("Shell")),
    FileKind("Text", "Python", (), ("text/x-script.python", "text/x-python"), "", shebang("Python")),
    FileKind("Text", "Perl", (), ("text/x-perl",), "", shebang("Perl")),
    FileKind("Text", "Ruby", (), ("text/x-ruby",), "", shebang("Ruby")),
    FileKind("Text", "PHP", (), ("text/x-php",), "", shebang("PHP") + rb"|\s*<\?php\b"),
    FileKind("Text", "Lua", (), ("text/x-lua",), "", shebang("Lua")),
    FileKind("Text", "Tcl", (), ("text/x-tcl",), "", shebang("Tcl")),
    FileKind("Text", "AWK", (), ("text/x-awk", "text/x-nawk", "text/x-gawk"), "", shebang("AWK")),
    FileKind("Text", "Batch", (), ("text/x-msdos-batch",), "", rb"(?i)\s*@echo off\b"),
    FileKind("Text", "C", (), ("text/x-c",)),
    FileKind("Text", "C++", (), ("text/x-c++",)),
    FileKind("Text", "Java", (), ("text/x-java",)),
    FileKind("Text", "Makefile", (), ("text/x-makefile",)),
    FileKind("Text", "Diff", (), ("text/x-diff", "text/x-patch")),
    FileKind("Text", "TeX", (), ("text/x-tex",)),
    FileKind("Text", "Troff", (), ("text/troff",)),
    FileKind("Text", "HTML", (), ("text/html",)),
    # SVG is XML: its row comes before Text/XML.
    FileKind(
        "Image",
        "SVG",
        (),
        ("image/svg+xml",),
        "",
        rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE svg[^>]*>\s*)?<svg\b",
    ),
    FileKind("Text", "XML", (), ("text/xml",)),
    FileKind("Text", "JSON", (), ("application/json",)),
    FileKind(
        "Text", "JavaScript", (), ("application/javascript", "text/javascript"), "", shebang("JavaScript")
    ),
    FileKind("Text", "YAML", (), ("application/yaml", "text/yaml"), "", rb"%YAML \d"),
    FileKind("Text", "CSV", (), ("text/csv",)),
    FileKind("Text", "Calendar", (), ("text/calendar",), "", rb"BEGIN:VCALENDAR\r?\n"),
    FileKind("Text", "vCard", (), ("text/vcard", "text/x-vcard"), "", rb"BEGIN:VCARD\r?\n"),
    # Images and media
    FileKind("Image", "PNG", at0(b"\x89PNG\r\n\x1a\n"), ("image/png",)),
    FileKind("Image", "JPEG", at0(b"\xff\xd8\xff"), ("image/jpeg",)),
    FileKind("Image", "GIF", at0(b"GIF87a", b"GIF89a"), ("image/gif",)),
    FileKind(
        "Image",
        "BMP",
        (),
        ("image/bmp", "image/x-ms-bmp"),
        "",
        rb"BM.{4}\x00\x00\x00\x00.{4}[\x0c\x28\x38\x40\x6c\x7c]\x00\x00\x00",
    ),
    FileKind("Image", "TIFF", at0(b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), ("image/tiff",)),
    FileKind("Image", "ICO", at0(b"\x00\x00\x01\x00"), ("image/vnd.microsoft.icon", "image/x-icon")),
    FileKind("Image", "CUR", (), ("image/x-win-bitmap",), "", rb"\x00\x00\x02\x00[\x01-\x40]\x00"),
    FileKind("Image", "ANI", (((0, b"RIFF"), (8, b"ACON")),), ("application/x-navi-animation",)),
    FileKind("Image", "WebP", (((0, b"RIFF"), (8, b"WEBP")),), ("image/webp",)),
    FileKind("Image", "PSD", at0(b"8BPS"), ("image/vnd.adobe.photoshop",)),
    # ISO base media (ftyp box): brands say image, audio or video; images first.
    FileKind(
        "Image",
        "HEIC",
        (),
        ("image/heic", "image/heif"),
        "",
        rb"....ftyp(?:heic|heix|hevc|heim|heis|mif1|msf1)",
    ),
    FileKind("Image", "AVIF", (), ("image/avif",), "", rb"....ftypavi[fs]"),
    FileKind(
        "Image",
        "JPEG2000",
        at0(b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"),
        ("image/jp2", "image/jpx"),
    ),
    FileKind("Image", "XCF", at0(b"gimp xcf "), ("image/x-xcf",)),
    FileKind("Image", "EMF", (((0, b"\x01\x00\x00\x00"), (40, b" EMF")),)),
    FileKind(
        "Image",
        "WMF",
        at0(b"\xd7\xcd\xc6\x9a", b"\x01\x00\x09\x00\x00\x03", b"\x02\x00\x09\x00\x00\x03"),
        ("image/wmf",),
    ),
    FileKind("Image", "DDS", at0(b"DDS |"), ("image/vnd.ms-dds",)),
    FileKind("Image", "EXR", at0(b"\x76\x2f\x31\x01"), ("image/x-exr",)),
    FileKind("Image", "QOI", at0(b"qoif"), ("image/x-qoi", "image/qoi")),
    FileKind("Image", "JPEGXL", at0(b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"), ("image/jxl",)),
    FileKind(
        "Image",
        "PNM",
        (),
        (
            "image/x-portable-bitmap",
            "image/x-portable-greymap",
            "image/x-portable-pixmap",
            "image/x-portable-anymap",
        ),
        "",
        rb"P[1-6]\s+(?:#[^\n]*\n\s*)*\d+\s+\d+\s",
    ),
    FileKind("Image", "XPM", at0(b"/* XPM */"), ("image/x-xpixmap", "image/x-xpmi")),
    FileKind("Image", "ICNS", at0(b"icns"), ("image/x-icns",)),
    FileKind("Image", "DICOM", at(128, b"DICM"), ("application/dicom",)),
    FileKind("Image", "FITS", at0(b"SIMPLE  =                    T"), ("image/fits", "application/fits")),
    FileKind("Media", "MP3", at0(b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xfa"), ("audio/mpeg",)),
    FileKind("Media", "WAV", (((0, b"RIFF"), (8, b"WAVE")),), ("audio/x-wav", "audio/wav")),
    FileKind("Media", "AVI", (((0, b"RIFF"), (8, b"AVI ")),), ("video/x-msvideo",)),
    FileKind(
        "Media", "MOV", (), ("video/quicktime",), "", rb"....ftypqt  |\x00\x00..(?:moov|mdat|wide|free)"
    ),
    FileKind("Media", "M4A", (), ("audio/x-m4a", "audio/mp4"), "", rb"....ftyp(?:M4A |M4B |M4P )"),
    FileKind("Media", "3GP", (), ("video/3gpp", "video/3gpp2"), "", rb"....ftyp3g"),
    FileKind(
        "Media", "MP4", (), ("video/mp4",), "", rb"....ftyp(?:isom|iso\d|mp4\d|avc1|M4V |dash|mmp4|msnv|f4v )"
    ),
    FileKind("Media", "WebM", (), ("video/webm",), "", rb"\x1a\x45\xdf\xa3.{0,64}\x42\x82.webm"),
    FileKind("Media", "MKV", (), ("video/x-matroska",), "", rb"\x1a\x45\xdf\xa3.{0,64}\x42\x82.matroska"),
    FileKind("Media", "FLAC", at0(b"fLaC"), ("audio/flac", "audio/x-flac")),
    FileKind("Media", "OGG", at0(b"OggS\x00"), ("audio/ogg", "video/ogg", "application/ogg")),
    FileKind(
        "Media", "AIFF", (((0, b"FORM"), (8, b"AIFF")), ((0, b"FORM"), (8, b"AIFC"))), ("audio/x-aiff",)
    ),
    FileKind("Media", "AU", at0(b".snd"), ("audio/basic",)),
    FileKind("Media", "MIDI", at0(b"MThd"), ("audio/midi",)),
    FileKind(
        "Media",
        "ASF",
        at0(bytes.fromhex("3026B2758E66CF11A6D900AA0062CE6C")),
        ("video/x-ms-asf", "audio/x-ms-asf"),
    ),
    FileKind("Media", "FLV", at0(b"FLV\x01"), ("video/x-flv",)),
    FileKind("Media", "MPEG", at0(b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"), ("video/mpeg",)),
    FileKind(
        "Media", "MPEGTS", (((0, b"\x47"), (188, b"\x47"), (376, b"\x47")),), ("video/mp2t", "video/MP2T")
    ),
    FileKind("Media", "AMR", at0(b"#!AMR"), ("audio/amr",)),
    FileKind(
        "Media",
        "AAC",
        (),
        ("audio/x-hx-aac-adts", "audio/aac", "audio/x-hx-aac-adif"),
        "",
        rb"\xff[\xf1\xf9]|ADIF",
    ),
    FileKind("Media", "APE", at0(b"MAC "), ("audio/x-ape",)),
    FileKind("Media", "WavPack", at0(b"wvpk")),
    FileKind("Media", "RealMedia", at0(b".RMF"), ("application/vnd.rn-realmedia",)),
    FileKind("Media", "CAF", at0(b"caff\x00\x01")),
    FileKind("Media", "MOD", at(1080, b"M.K."), ()),
    FileKind("Media", "XM", at0(b"Extended Module: ")),
    FileKind("Media", "S3M", at(44, b"SCRM"), ("audio/x-s3m",)),
    FileKind("Media", "VOC", at0(b"Creative Voice File\x1a")),
    # Fonts
    FileKind(
        "Font",
        "TrueType",
        (),
        ("font/sfnt", "application/x-font-ttf"),
        "",
        rb"(?:\x00\x01\x00\x00|true)\x00[\x01-\x40].{6}[\x20-\x7e]{4}",
    ),
    FileKind("Font", "OpenType", at0(b"OTTO"), ("application/vnd.ms-opentype", "font/otf")),
    FileKind("Font", "TrueTypeCollection", at0(b"ttcf")),
    FileKind("Font", "WOFF", at0(b"wOFF"), ("font/woff",)),
    FileKind("Font", "WOFF2", at0(b"wOF2"), ("font/woff2",)),
    FileKind(
        "Font",
        "EOT",
        (
            # Version 1.0, 2.1, 2.2 at 8, "LP" at 34.
            ((8, b"\x00\x00\x01\x00"), (34, b"LP")),
            ((8, b"\x01\x00\x02\x00"), (34, b"LP")),
            ((8, b"\x02\x00\x02\x00"), (34, b"LP")),
        ),
        ("application/vnd.ms-fontobject",),
    ),
    FileKind("Font", "Type1", at0(b"%!PS-AdobeFont", b"%!FontType1"), ()),
    FileKind(
        "Font",
        "PFB",
        at0(b"\x80\x01"),
        ("font/x-postscript-pfb",),
        "",
        rb"\x80\x01.{4}%!(?:PS-AdobeFont|FontType1)",
    ),
    FileKind("Font", "BDF", at0(b"STARTFONT "), ()),
    FileKind("Font", "PCF", at0(b"\x01fcp")),
    # Databases
    FileKind(
        "Database",
        "SQLite",
        at0(b"SQLite format 3\x00"),
        ("application/vnd.sqlite3", "application/x-sqlite3"),
    ),
    FileKind("Database", "Access", at0(b"\x00\x01\x00\x00Standard Jet DB")),
    FileKind("Database", "AccessACE", at0(b"\x00\x01\x00\x00Standard ACE DB")),
    FileKind(
        "Database",
        "BerkeleyDB",
        (
            *at(12, b"\x62\x31\x05\x00"),
            *at(12, b"\x00\x05\x31\x62"),
            *at(12, b"\x61\x15\x06\x00"),
            *at(12, b"\x00\x06\x15\x61"),
        ),
    ),
    FileKind("Database", "ESE", at(4, b"\xef\xcd\xab\x89")),
    FileKind(
        "Database", "KeePass", at0(b"\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5", b"\x03\xd9\xa2\x9a\x65\xfb\x4b\xb5")
    ),
    FileKind("Email", "PST", (((0, b"!BDN"), (8, b"SM")),), ("application/vnd.ms-outlook",)),
    # Disk images and firmware
    FileKind("Disk", "VHD", at0(b"conectix"), ("application/x-virtualbox-vhd",)),
    FileKind("Disk", "VHDX", at0(b"vhdxfile")),
    FileKind("Disk", "VMDK", at0(b"KDMV", b"COWD", b"# Disk DescriptorFile"), ("application/x-vmdk",)),
    FileKind("Disk", "QCOW2", at0(b"QFI\xfb"), ("application/x-qemu-disk",)),
    FileKind("Disk", "VDI", at(64, b"\x7f\x10\xda\xbe")),
    FileKind("Disk", "WIM", at0(b"MSWIM\x00\x00\x00"), ("application/x-ms-wim",)),
    FileKind("Disk", "SquashFS", at0(b"hsqs", b"sqsh")),
    # Boot sectors: file systems by their OEM id or superblock before the bare MBR.
    FileKind("Disk", "NTFS", (((3, b"NTFS    "), (510, b"\x55\xaa")),)),
    FileKind(
        "Disk",
        "FAT",
        (
            ((54, b"FAT1"), (510, b"\x55\xaa")),
            ((82, b"FAT32   "), (510, b"\x55\xaa")),
            ((3, b"EXFAT   "), (510, b"\x55\xaa")),
        ),
    ),
    FileKind("Disk", "Ext", at(1080, b"\x53\xef")),
    FileKind("Disk", "GPT", (((510, b"\x55\xaa"), (512, b"EFI PART")),)),
    FileKind("Disk", "MBR", at(510, b"\x55\xaa")),
    FileKind("Firmware", "UEFI", at(40, b"_FVH")),
    FileKind("Firmware", "IntelHex", header=rb":[0-9A-Fa-f]{10,}\r?\n:[0-9A-Fa-f]{10,}\r?\n"),
    FileKind("Firmware", "UImage", at0(b"\x27\x05\x19\x56")),
    FileKind("Firmware", "AndroidBoot", at0(b"ANDROID!")),
    FileKind("Firmware", "DTB", at0(b"\xd0\x0d\xfe\xed")),
    # Certificates and keys
    FileKind("Certificate", "PEM", header=pem("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE")),
    FileKind("Certificate", "CSR", header=pem("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")),
    FileKind("Certificate", "CRL", header=pem("X509 CRL")),
    FileKind("Certificate", "PKCS7", header=pem("PKCS7", "CMS")),
    # DER: a SEQUENCE of a SEQUENCE opening with the explicit [0] version tag (a0 03 02 01).
    FileKind(
        "Certificate",
        "DER",
        (),
        ("application/x-x509-ca-cert", "application/pkix-cert"),
        r"^Certificate, Version=",
        rb"\x30\x82..\x30\x82..\xa0\x03\x02\x01",
    ),
    FileKind(
        "Key",
        "PrivateKey",
        header=pem(
            "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"
        ),
    ),
    FileKind("Key", "PublicKey", header=pem("PUBLIC KEY", "RSA PUBLIC KEY")),
    FileKind("Key", "OpenSSH", header=pem("OPENSSH PRIVATE KEY")),
    FileKind(
        "Key",
        "SSHPublic",
        header=rb"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com) AAAA",
    ),
    FileKind("Key", "JKS", at0(b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"), ("application/x-java-keystore",)),
    FileKind("PGP", "PublicKey", header=pem("PGP PUBLIC KEY BLOCK")),
    FileKind("PGP", "PrivateKey", header=pem("PGP PRIVATE KEY BLOCK")),
    FileKind("PGP", "Message", header=pem("PGP MESSAGE")),
    FileKind("PGP", "Signature", header=pem("PGP SIGNATURE")),
    FileKind("PGP", "Signed", header=pem("PGP SIGNED MESSAGE")),
    # Bytecode and packages
    FileKind("Bytecode", "DEX", header=rb"dex\n0\d\d\x00"),
    FileKind("Bytecode", "ODEX", header=rb"dey\n0\d\d\x00"),
    FileKind("Bytecode", "JavaClass", header=rb"\xca\xfe\xba\xbe..\x00[\x2d-\x7f]"),
    FileKind("Bytecode", "WebAssembly", at0(b"\x00asm"), ("application/wasm",)),
    # CPython's magic number (3.x: 3000-3999; 2.7: 62211), then "\r\n"; pcapng's magic is one of them.
    FileKind(
        "Bytecode",
        "Python",
        at0(b"\x03\xf3\r\n"),
        ("application/x-bytecode.python",),
        "",
        rb"(?!\x0a\x0d\x0d\x0a).[\x0b-\x0f]\r\n",
    ),
    FileKind("Bytecode", "Lua", header=rb"\x1bLua[\x50-\x54]"),
    FileKind("Bytecode", "LuaJIT", header=rb"\x1bLJ[\x01\x02]"),
    FileKind("Data", "JavaSerialized", at0(b"\xac\xed\x00\x05")),
    # Pickle protocols 2-5 (protocol 4+ frames its opcodes).
    FileKind(
        "Data",
        "Pickle",
        header=rb"\x80[\x02-\x05](?:\x95.{8})?[\x7d\x5d\x28\x63\x8c\x4b\x4a\x58\x88\x89\x4e]",
    ),
    FileKind("Flash", "SWFZlib", at0(b"CWS")),
    FileKind("Flash", "SWFLZMA", at0(b"ZWS")),
    FileKind("Flash", "SWF", at0(b"FWS"), ("application/x-shockwave-flash",)),
    FileKind("Package", "CRX", at0(b"Cr24"), ("application/x-chrome-extension",)),
    # Shortcuts and system files
    FileKind(
        "Shortcut",
        "LNK",
        at0(bytes.fromhex("4C0000000114020000000000C000000000000046")),
        ("application/x-ms-shortcut",),
    ),
    FileKind("Shortcut", "URL", (), ("application/x-mswinurl",), "", rb"(?i)\s*\[InternetShortcut\]"),
    FileKind("Windows", "Registry", at0(b"regf")),
    FileKind(
        "Windows",
        "RegistryExport",
        at0(b"REGEDIT4", "\ufeffWindows Registry Editor".encode("utf-16-le"), b"Windows Registry Editor"),
        ("text/x-ms-regedit",),
    ),
    FileKind("Windows", "EVTX", at0(b"ElfFile\x00")),
    FileKind("Windows", "EVT", (((0, b"\x30\x00\x00\x00"), (4, b"LfLe")),)),
    FileKind("Windows", "Prefetch", (*at(4, b"SCCA"), *at0(b"MAM\x04"))),
    FileKind("Windows", "Minidump", at0(b"MDMP\x93\xa7")),
    FileKind("Windows", "HLP", at0(b"\x3f\x5f\x03\x00")),
    FileKind(
        "Windows", "PDB", at0(b"Microsoft C/C++ MSF 7.00\r\n", b"Microsoft C/C++ program database 2.00\r\n")
    ),
    FileKind(
        "Network",
        "PCAP",
        at0(b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"),
    ),
    FileKind(
        "Network",
        "PCAPNG",
        (
            ((0, b"\x0a\x0d\x0d\x0a"), (8, b"\x4d\x3c\x2b\x1a")),
            ((0, b"\x0a\x0d\x0d\x0a"), (8, b"\x1a\x2b\x3c\x4d")),
        ),
    ),
    FileKind("Apple", "Plist", at0(b"bplist0")),
    FileKind("Apple", "DSStore", at0(b"\x00\x00\x00\x01Bud1")),
    # Generic fallbacks: what libmagic names only by family.
    FileKind("Text", "None", (), ("text/",)),
    FileKind("Image", "None", (), ("image/",)),
    FileKind("Media", "Audio", (), ("audio/",)),
    FileKind("Media", "Video", (), ("video/",)),
    # Nothing
    FileKind("None", "Empty", (), ("inode/x-empty",)),
)


def classify_kind(head: bytes, mime_type: str, description: str) -> tuple[str, str]:
    """The (file_type, file_subtype) of the first row matching; ("Binary", "None") if none does."""
    for kind in KINDS:
        if kind.matches(head, mime_type, description):
            return kind.file_type, kind.file_subtype
    return "Binary", "None"
