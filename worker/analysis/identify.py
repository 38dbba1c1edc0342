"""File identification: libmagic's MIME type and description, mapped to report file types."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _magic() -> tuple[Any, Any]:
    try:
        import magic
    except ImportError:
        # No system libmagic: use the copy that the pylibmagic wheel carries.
        import magic
        import pylibmagic  # noqa: F401
    return magic.Magic(mime=True), magic.Magic()


# (MIME prefix or exact type, file_type, file_subtype); first match wins.
MIME_TYPES: tuple[tuple[str, str, str], ...] = (
    ("application/x-dosexec", "PE", "Exe"),
    ("application/vnd.microsoft.portable-executable", "PE", "Exe"),
    ("application/x-executable", "ELF", "Exe"),
    ("application/x-pie-executable", "ELF", "Exe"),
    ("application/x-sharedlib", "ELF", "Library"),
    ("application/x-object", "ELF", "Object"),
    ("application/x-mach-binary", "MachO", "Exe"),
    ("application/pdf", "Document", "PDF"),
    ("application/msword", "Document", "Word"),
    ("application/vnd.ms-excel", "Document", "Excel"),
    ("application/vnd.ms-powerpoint", "Document", "PowerPoint"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml", "Document", "Word"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml", "Document", "Excel"),
    ("application/vnd.openxmlformats-officedocument.presentationml", "Document", "PowerPoint"),
    ("application/x-ole-storage", "Document", "OLE"),
    ("application/CDFV2", "Document", "OLE"),
    ("application/rtf", "Document", "RTF"),
    ("text/rtf", "Document", "RTF"),
    ("application/zip", "Archive", "ZIP"),
    ("application/java-archive", "Archive", "JAR"),
    ("application/x-tar", "Archive", "TAR"),
    ("application/gzip", "Archive", "GZIP"),
    ("application/x-gzip", "Archive", "GZIP"),
    ("application/x-bzip2", "Archive", "BZIP2"),
    ("application/x-xz", "Archive", "XZ"),
    ("application/x-7z-compressed", "Archive", "7ZIP"),
    ("application/x-rar", "Archive", "RAR"),
    ("application/vnd.rar", "Archive", "RAR"),
    ("text/x-shellscript", "Text", "Shell"),
    ("text/x-script.python", "Text", "Python"),
    ("text/x-python", "Text", "Python"),
    ("text/html", "Text", "HTML"),
    ("text/xml", "Text", "XML"),
    ("application/json", "Text", "JSON"),
    ("application/javascript", "Text", "JavaScript"),
    ("text/javascript", "Text", "JavaScript"),
    ("text/", "Text", "None"),
    ("image/", "Image", "None"),
    ("audio/", "Media", "Audio"),
    ("video/", "Media", "Video"),
    ("inode/x-empty", "None", "Empty"),
)


def file_types(mime_type: str) -> tuple[str, str]:
    for prefix, file_type, file_subtype in MIME_TYPES:
        if mime_type.startswith(prefix):
            return file_type, file_subtype
    return "Binary", "None"


def identify(head: bytes) -> dict[str, str]:
    """Identify a file from its first bytes (libmagic needs no more than that)."""
    by_mime, by_description = _magic()
    mime_type = by_mime.from_buffer(head) if head else "inode/x-empty"
    description = by_description.from_buffer(head) if head else "empty"
    file_type, file_subtype = file_types(mime_type)
    return {
        "file_type": file_type,
        "file_subtype": file_subtype,
        "mime_type": mime_type,
        "description": description,
    }
