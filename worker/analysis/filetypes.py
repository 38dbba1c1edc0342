"""The identification table: every file type/subtype scanhub reports, and how each is recognised.

One row per type/subtype pair, grouped by family; the first row that matches wins, so
specific rows come before general ones. A row matches a file when any of its criteria does:

- `magic`: byte signatures, each `(offset, bytes)`; all pairs of one signature must match
  (several signatures: any of them);
- `mime`: libmagic MIME types (exact), or prefixes ending in `/` or `*`;
- `description`: a regular expression searched in libmagic's description.

`libmagic` is asked once per file (MIME type and description); our signatures cover what
it misses or names vaguely. Every row has a test on a sample the tests build.
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
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.description:
            object.__setattr__(self, "pattern", re.compile(self.description, re.IGNORECASE))

    def matches(self, head: bytes, mime_type: str, description: str) -> bool:
        for signature in self.magic:
            if all(head[offset : offset + len(value)] == value for offset, value in signature):
                return True
        for wanted in self.mime:
            if wanted.endswith(("/", "*")):
                if mime_type.startswith(wanted.rstrip("*")):
                    return True
            elif mime_type == wanted:
                return True
        return self.pattern is not None and self.pattern.search(description) is not None


def sig(*parts: tuple[int, bytes]) -> Signature:
    return parts


def at0(value: bytes) -> tuple[Signature, ...]:
    return (((0, value),),)


KINDS: tuple[FileKind, ...] = (
    # Executables
    FileKind(
        "PE", "Exe", at0(b"MZ"), ("application/x-dosexec", "application/vnd.microsoft.portable-executable")
    ),
    FileKind("ELF", "Exe", (), ("application/x-executable", "application/x-pie-executable")),
    FileKind("ELF", "Library", (), ("application/x-sharedlib",)),
    FileKind("ELF", "Object", (), ("application/x-object",)),
    FileKind("ELF", "Other", at0(b"\x7fELF")),
    FileKind(
        "MachO",
        "Exe",
        (
            *at0(b"\xfe\xed\xfa\xce"),
            *at0(b"\xfe\xed\xfa\xcf"),
            *at0(b"\xce\xfa\xed\xfe"),
            *at0(b"\xcf\xfa\xed\xfe"),
        ),
        ("application/x-mach-binary",),
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
    # Outlook messages are OLE files: this row of "Mail and encodings" must precede the OLE one.
    FileKind("Email", "MSG", (), ("application/vnd.ms-outlook",), r"Microsoft Outlook Message"),
    FileKind(
        "Document",
        "OLE",
        at0(bytes.fromhex("D0CF11E0A1B11AE1")),
        ("application/x-ole-storage", "application/CDFV2"),
    ),
    # Archives and compression
    FileKind("Archive", "ZIP", at0(b"PK\x03\x04"), ("application/zip",)),
    FileKind("Archive", "JAR", (), ("application/java-archive",)),
    FileKind("Archive", "TAR", (((257, b"ustar"),),), ("application/x-tar",)),
    FileKind("Archive", "GZIP", at0(b"\x1f\x8b"), ("application/gzip", "application/x-gzip")),
    FileKind("Archive", "BZIP2", at0(b"BZh"), ("application/x-bzip2",)),
    FileKind("Archive", "XZ", at0(b"\xfd7zXZ\x00"), ("application/x-xz",)),
    FileKind("Archive", "7ZIP", at0(b"7z\xbc\xaf\x27\x1c"), ("application/x-7z-compressed",)),
    FileKind(
        "Archive",
        "RAR",
        (*at0(b"Rar!\x1a\x07\x00"), *at0(b"Rar!\x1a\x07\x01\x00")),
        ("application/x-rar", "application/vnd.rar"),
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
    FileKind("Text", "Shell", (), ("text/x-shellscript",)),
    FileKind("Text", "Python", (), ("text/x-script.python", "text/x-python")),
    FileKind("Text", "HTML", (), ("text/html",)),
    FileKind("Text", "XML", (), ("text/xml",)),
    FileKind("Text", "JSON", (), ("application/json",)),
    FileKind("Text", "JavaScript", (), ("application/javascript", "text/javascript")),
    FileKind("Text", "None", (), ("text/",)),
    # Images and media
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
