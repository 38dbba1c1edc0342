"""Signatures of the files worth carving out of document data (PDF streams, RTF pictures)."""

from __future__ import annotations

# Enough for the signatures below and for the PE header an MZ header points to (0x80-0x200 in practice).
SNIFF_BYTES = 4096
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "ZIP"),
    (b"%PDF-", "PDF"),
    (b"{\\rt", "RTF"),
    (bytes.fromhex("D0CF11E0A1B11AE1"), "OLE"),
    (b"\x7fELF", "ELF"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "RAR"),
    (b"MSCF\0\0\0\0", "CAB"),
)
PE_OFFSET_FIELD = 0x3C


def file_kind(head: bytes) -> str | None:
    """The kind of file `head` starts, for the kinds that hide payloads; None for anything else."""
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    if head.startswith(b"MZ") and len(head) >= PE_OFFSET_FIELD + 4:
        # "MZ" alone is too common in image and font data: require the PE header it points to.
        offset = int.from_bytes(head[PE_OFFSET_FIELD : PE_OFFSET_FIELD + 4], "little")
        if head[offset : offset + 4] == b"PE\0\0":
            return "PE"
    return None
