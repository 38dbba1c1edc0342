"""Outlook .msg extractor (olefile, MS-OXMSG): attachments, the text, HTML and RTF bodies, embedded messages.

olefile rather than extract-msg: the message is read by its MS-OXMSG stream names
(`__substg1.0_<tag>` streams, `__attach_version1.0_#N` storages), which needs no more than
a compound-file reader that oletools already brings; extract-msg adds eight packages
(BeautifulSoup, lark, RTFDE...), takes a third of a second to import and decodes every
property of the message eagerly. A message attached to a message (a storage, not a file)
is walked in place, its files named under the attachment's name. olefile builds every
directory entry on open (about 1 KiB and 65 us each, measured) and reads each stream into
memory, so a directory of more than `MAX_DIRECTORY_ENTRIES` entries is refused before it
is built, and so is a message above `MAX_MESSAGE_BYTES`, each with an error item.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import olefile

from worker.analysis.context import Analyzer, FileContext, Findings

MAX_MESSAGE_BYTES = 64 * 1024**2
# 20,000 entries cost olefile 1.3 s and 20 MiB; a real message has tens per attachment.
MAX_DIRECTORY_ENTRIES = 20_000
DIRECTORY_ENTRY_BYTES = 128
MAX_EMBEDDED_DEPTH = 8
MAX_ATTACHMENTS = 10_000
ATTACHMENT_PREFIX = "__attach_version1.0_#"
EMBEDDED_STORAGE = "__substg1.0_3701000D"
ATTACHMENT_DATA = "__substg1.0_37010102"
# Attachment names, best first: long filename, filename, display name (Unicode, then ANSI).
NAME_TAGS = ("3707", "3704", "3001")
# Bodies: (property tag with type, reported name).
BODIES = (
    ("1000001F", "body.txt"),
    ("1000001E", "body.txt"),
    ("10130102", "body.html"),
    ("1013001F", "body.html"),
    ("1013001E", "body.html"),
)
RTF_COMPRESSED = "10090102"
SUBJECT_TAG = "0037"
UTF16_SUBSTG = "__substg1.0_".encode("utf-16-le")

# MS-OXRTFCP: the dictionary every compressed RTF starts from.
RTF_PREBUF = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
    b"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
    b"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
RTF_COMPRESSED_MAGIC = b"LZFu"
RTF_UNCOMPRESSED_MAGIC = b"MELA"
RTF_FLUSH = 64 * 1024


class DirectoryTooLarge(ValueError):
    """The compound file's directory has more entries than we build."""


class BoundedOleFile(olefile.OleFileIO):
    """olefile's reader, refusing a directory too large to build before building it."""

    def loaddirectory(self, sect: int) -> None:
        entries = self._open(sect, force_FAT=True).size // DIRECTORY_ENTRY_BYTES
        if entries > MAX_DIRECTORY_ENTRIES:
            raise DirectoryTooLarge(f"{entries} directory entries (limit {MAX_DIRECTORY_ENTRIES})")
        super().loaddirectory(sect)


class CompressedRTFError(ValueError):
    """The compressed RTF's header or stream is damaged."""


def decompress_rtf(data: bytes) -> Iterator[bytes]:
    """Decompress an MS-OXRTFCP stream (LZFu, or MELA for stored), one block at a time."""
    if len(data) < 16:
        raise CompressedRTFError("compressed RTF shorter than its header")
    compressed_size, raw_size, magic = struct.unpack_from("<II4s", data)
    end = min(len(data), compressed_size + 4)
    if magic == RTF_UNCOMPRESSED_MAGIC:
        yield data[16 : 16 + raw_size]
        return
    if magic != RTF_COMPRESSED_MAGIC:
        raise CompressedRTFError(f"unknown compressed RTF type {magic!r}")
    dictionary = bytearray(RTF_PREBUF.ljust(4096, b" "))
    write = len(RTF_PREBUF)
    out = bytearray()
    position = 16
    while position < end:
        control = data[position]
        position += 1
        for bit in range(8):
            if position >= end:
                break
            if not control & (1 << bit):
                byte = data[position]
                position += 1
                out.append(byte)
                dictionary[write] = byte
                write = (write + 1) & 0xFFF
                continue
            if position + 2 > end:
                raise CompressedRTFError("compressed RTF ends inside a reference")
            token = (data[position] << 8) | data[position + 1]
            position += 2
            offset, length = token >> 4, (token & 0xF) + 2
            if offset == write:  # the end marker
                yield bytes(out)
                return
            for step in range(length):
                byte = dictionary[(offset + step) & 0xFFF]
                out.append(byte)
                dictionary[write] = byte
                write = (write + 1) & 0xFFF
        if len(out) >= RTF_FLUSH:
            yield bytes(out)
            out.clear()
    yield bytes(out)


def is_outlook_message(context: FileContext) -> bool:
    """An Outlook message libmagic named only as OLE: its directory holds `__substg1.0_` streams."""
    return context.is_a("Email", "MSG") or UTF16_SUBSTG in context.head


def read_text(ole: olefile.OleFileIO, storage: list[str], tag: str, limit: int = 4096) -> str | None:
    """A string property (tag without type) of a storage: Unicode stream first, then ANSI."""
    for suffix, encoding in (("001F", "utf-16-le"), ("001E", "cp1252")):
        path = [*storage, f"__substg1.0_{tag}{suffix}"]
        if ole.exists(path) and ole.get_type(path) == olefile.STGTY_STREAM:
            with ole.openstream(path) as stream:
                raw = stream.read(limit * 2)
            return raw.decode(encoding, "replace").rstrip("\0").strip() or None
    return None


def stream_path(ole: olefile.OleFileIO, storage: list[str], name: str) -> list[str] | None:
    path = [*storage, name]
    if ole.exists(path) and ole.get_type(path) == olefile.STGTY_STREAM:
        return path
    return None


def storage_members(ole: olefile.OleFileIO) -> dict[tuple[str, ...], list[str]]:
    """The names of each storage's direct members, by the storage's path."""
    members: dict[tuple[str, ...], list[str]] = {}
    for path in ole.listdir(streams=True, storages=True):
        members.setdefault(tuple(path[:-1]), []).append(path[-1])
    return members


class MessageWalk:
    """Extracts the bodies and attachments of one message storage, and of messages attached to it."""

    def __init__(self, context: FileContext, ole: olefile.OleFileIO):
        self.context, self.ole = context, ole
        self.members = storage_members(ole)
        self.attachments: list[str] = []
        self.errors: list[str] = []

    def emit_stream(self, path: list[str], name: str) -> None:
        size = self.ole.get_size(path)
        with self.ole.openstream(path) as stream:
            self.context.extract(name, stream, max(1, size))

    def walk(self, storage: list[str], prefix: str, depth: int) -> None:
        context = self.context
        emitted: set[str] = set()
        for tag, name in BODIES:
            path = stream_path(self.ole, storage, f"__substg1.0_{tag}")
            if path and name not in emitted and self.ole.get_size(path) > 0:
                emitted.add(name)
                context.extraction.members += 1
                self.emit_stream(path, prefix + name)
        rtf = stream_path(self.ole, storage, f"__substg1.0_{RTF_COMPRESSED}")
        if rtf:
            context.extraction.members += 1
            with self.ole.openstream(rtf) as stream:
                packed = stream.read()
            try:
                context.extract(prefix + "body.rtf", decompress_rtf(packed), max(1, len(packed)))
            except CompressedRTFError as error:
                self.errors.append(f"{prefix}body.rtf: {error}")
        kids = sorted(
            name for name in self.members.get(tuple(storage), []) if name.startswith(ATTACHMENT_PREFIX)
        )
        for number, kid in enumerate(kids[:MAX_ATTACHMENTS], start=1):
            context.check_time("reading Outlook attachments")
            self.attachment([*storage, kid], prefix, number, depth)
        if len(kids) > MAX_ATTACHMENTS:
            self.errors.append(f"more than {MAX_ATTACHMENTS} attachments: the rest were not read")

    def attachment(self, storage: list[str], prefix: str, number: int, depth: int) -> None:
        context = self.context
        context.extraction.members += 1
        name = next(
            (text for tag in NAME_TAGS if (text := read_text(self.ole, storage, tag))), f"attachment-{number}"
        )
        data = stream_path(self.ole, storage, ATTACHMENT_DATA)
        if data:
            self.attachments.append(prefix + name)
            self.emit_stream(data, prefix + name)
            return
        embedded = [*storage, EMBEDDED_STORAGE]
        if not (self.ole.exists(embedded) and self.ole.get_type(embedded) == olefile.STGTY_STORAGE):
            context.skip(prefix + name, "attachment without data (a link or a reference)")
            return
        members = self.members.get(tuple(embedded), [])
        if not any(member.startswith("__substg1.0_") for member in members):
            context.skip(prefix + name, "embedded OLE object storage (not a file): not extracted")
            return
        if depth >= MAX_EMBEDDED_DEPTH:
            context.skip(prefix + name, f"message embedded more than {MAX_EMBEDDED_DEPTH} levels deep")
            return
        self.walk(embedded, f"{prefix}{name}/", depth + 1)


def extract(context: FileContext) -> Findings:
    if context.size > MAX_MESSAGE_BYTES:
        return {"errors": [f"message of {context.size} bytes not parsed (limit {MAX_MESSAGE_BYTES} bytes)"]}
    try:
        ole = BoundedOleFile(str(context.path))
    except (OSError, ValueError, struct.error, IndexError, RecursionError) as error:
        return {"errors": [f"not a readable compound file: {type(error).__name__}: {error}"]}
    with ole:
        walk = MessageWalk(context, ole)
        walk.walk([], "", 0)
        subject = read_text(ole, [], SUBJECT_TAG)
    summary: dict[str, object] = {"attachments": walk.attachments[:100]}
    if subject:
        summary["subject"] = subject[:256]
    findings: Findings = {
        "identity": {"file_type": "Email", "file_subtype": "MSG"},
        "metadata": {"email": summary},
    }
    if walk.errors:
        findings["errors"] = walk.errors
    return findings


ANALYZER = Analyzer(
    name="outlook",
    version="1",
    run=extract,
    accepts=("Email/MSG", "Document/OLE"),
    when=is_outlook_message,
    extracts=True,
)
