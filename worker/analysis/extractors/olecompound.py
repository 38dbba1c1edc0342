"""OLE2 compound file extractor (olefile, oletools): embedded objects and OLE1 packages as children.

Legacy Office documents and the `oleObject*.bin` parts of OOXML files are compound files
(MS-CFB). An embedded file sits in a `\\x01Ole10Native` stream (an OLE1 Package: a header
naming the file, then its bytes), a `Package` stream (an embedded OOXML document), a
`CONTENTS` stream (an embedded PDF and the like), or the streams of an embedded object's
storage (`ObjectPool/_*` in Word, `MBD*` in Excel and PowerPoint). A PowerPoint 97-2003 file
keeps its embedded objects as zlib-compressed compound files in records of its `PowerPoint
Document` stream; each one is decompressed through the extraction budget and becomes a child,
itself a compound file this extractor then opens.

olefile reads the sector tables and the directory into memory and each stream whole, so
files above `office_max_bytes` are refused, and so is a directory of more entries than any
real document has, before olefile builds one object per entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

import olefile
from oletools import oleobj, ppt_record_parser

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
OLE_SUBTYPES = ("Word", "Excel", "PowerPoint", "OLE")
MAX_STREAMS = 10_000
MAX_DIRECTORY_ENTRIES = 100_000
DIRECTORY_ENTRY_BYTES = 128
NATIVE_STREAM = "\x01ole10native"
# Streams that hold a whole embedded file: an OOXML package, or an object's native contents.
WHOLE_FILE_STREAMS = ("package", "contents")
MAX_PPT_RECORDS = 100_000
PPT_DOCUMENT_STREAM = "PowerPoint Document"

# oletools logs every oddity of a damaged file.
for _name in ("oleobj", "olefile", "ppt_record_parser", "record_base"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class OleTooLarge(Exception):
    """The compound file's directory has more entries than any real document has."""


class BoundedOleFile(olefile.OleFileIO):
    """olefile, refusing a directory of more than MAX_DIRECTORY_ENTRIES entries."""

    def loaddirectory(self, sect: int) -> None:
        # olefile would build an object for each reachable entry; count them first.
        directory = self._open(sect, force_FAT=True)
        entries = directory.size // DIRECTORY_ENTRY_BYTES
        if entries > MAX_DIRECTORY_ENTRIES:
            raise OleTooLarge(f"directory of {entries} entries (limit {MAX_DIRECTORY_ENTRIES})")
        super().loaddirectory(sect)


def is_ole(context: FileContext) -> bool:
    return context.head.startswith(OLE_MAGIC)


def in_object_storage(path: list[str]) -> bool:
    """Whether a stream belongs to an embedded object's storage (Word's ObjectPool, Excel's MBD*)."""
    if len(path) >= 3 and path[0].lower() == "objectpool":
        return True
    return any(part.upper().startswith("MBD") for part in path[:-1])


def is_property_stream(name: str) -> bool:
    # \x01Ole, \x01CompObj, \x03ObjInfo, \x05SummaryInformation...: an object's bookkeeping.
    return bool(name) and ord(name[0]) < 0x20


def limited(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """At most `size` bytes of `stream`, one block at a time."""
    left = size
    while left > 0 and (block := stream.read(min(left, 1024 * 1024))):
        left -= len(block)
        yield block


def package_name(package: oleobj.OleNativeStream, fallback: str) -> str:
    for name in (package.filename, package.src_path, package.temp_path):
        if name and isinstance(name, str):
            return name
    return fallback


def extract_native(context: FileContext, ole: olefile.OleFileIO, path: list[str]) -> None:
    """An OLE1 `\\x01Ole10Native` stream: the Package's file under its own name, or the raw data."""
    stream_path = "/".join(path)
    size = ole.get_size(path)
    stream = ole.openstream(path)
    try:
        package = oleobj.OleNativeStream(stream)
        header_end = stream.tell()
        usable = (
            not package.is_link
            and package.actual_size is not None
            and header_end + package.actual_size <= size
        )
    except Exception:  # not an OLE1 Package (another OLE1 class), or a damaged header
        usable = False
    if usable:
        name = package_name(package, stream_path)
        context.extract(name, limited(stream, package.actual_size), package.actual_size, "embedded")
        return
    # Another OLE1 class: after the 4-byte size comes the object's native data.
    stream.seek(4)
    context.extract(stream_path, stream, size, "embedded")


def extract_ppt_objects(context: FileContext, notes: list[str]) -> int:
    """The compressed compound files in a PowerPoint 97-2003 file's records (ExOleObjStg)."""
    found = 0
    ppt = ppt_record_parser.PptFile(str(context.path))
    try:
        records = 0
        for stream in ppt.iter_streams():
            if stream.name != PPT_DOCUMENT_STREAM:
                continue
            for record in stream.iter_records():
                records += 1
                if records > MAX_PPT_RECORDS:
                    notes.append(f"PowerPoint records: stopped after {MAX_PPT_RECORDS}")
                    return found
                if not isinstance(record, ppt_record_parser.PptRecordExOleVbaActiveXAtom):
                    continue
                found += 1
                packed = record.size if record.size is not None else context.size
                name = f"{PPT_DOCUMENT_STREAM}/ExOleObjStg-{found}"
                context.extract(name, record.iter_uncompressed(), packed, "embedded")
    finally:
        ppt.close()
    return found


def extract(context: FileContext) -> Findings:
    limit = context.settings.office_max_bytes
    if context.size > limit:
        return {"errors": [f"compound file larger than {limit} bytes: embedded objects not extracted"]}
    notes: list[str] = []
    try:
        ole = BoundedOleFile(str(context.path))
    except OleTooLarge as error:
        return {"errors": [f"compound file not opened: {error}"]}
    try:
        for number, path in enumerate(ole.listdir(streams=True, storages=False)):
            if number >= MAX_STREAMS:
                notes.append(f"stopped after {MAX_STREAMS} streams")
                break
            context.extraction.members += 1
            name = path[-1].lower()
            if name == NATIVE_STREAM:
                extract_native(context, ole, path)
            elif name in WHOLE_FILE_STREAMS or (in_object_storage(path) and not is_property_stream(path[-1])):
                context.extract("/".join(path), ole.openstream(path), ole.get_size(path), "embedded")
        is_ppt = ole.exists(PPT_DOCUMENT_STREAM)
    finally:
        ole.close()
    if is_ppt:
        extract_ppt_objects(context, notes)
    findings: Findings = {"errors": notes}
    objects = [child for child in context.extraction.children if child.relationship == "embedded"]
    if objects:
        hits: list[HeuristicHit] = [hit("office:embedded-object", *[c.file_path for c in objects][:5])]
        findings["heuristics"] = hits
        findings["story"] = [f"It carries {len(objects)} embedded object(s)."]
    return findings


ANALYZER = Analyzer(
    name="ole",
    version="1",
    run=extract,
    accepts=tuple(f"Document/{kind}" for kind in OLE_SUBTYPES),
    when=is_ole,
    extracts=True,
)
