"""PE payload extractor (pefile): the overlay and the resources that hold a file of their own, as children.

Droppers and self-extractors carry their payload after the last section (the overlay) or in a
resource (RT_RCDATA mostly). A payload is emitted when it starts with a known file signature;
an overlay also when it ends with a ZIP directory (a launcher with a script and a ZIP
appended, as distlib builds them: the child starts at the ZIP) or when it is large. Overlays
that an installer or PyInstaller extractor already unpacks are left to it.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import IO

import pefile

from worker.analysis.context import Analyzer, FileContext, Findings

NAME = "pe-payloads"
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", ".zip"),
    (b"7z\xbc\xaf\x27\x1c", ".7z"),
    (b"Rar!\x1a\x07", ".rar"),
    (b"MZ", ".exe"),
    (b"\x7fELF", ".elf"),
    (b"%PDF-", ".pdf"),
    (bytes.fromhex("D0CF11E0A1B11AE1"), ".ole"),
    (b"MSCF\0\0\0\0", ".cab"),
    (b"\x1f\x8b\x08", ".gz"),
    (b"BZh", ".bz2"),
    (b"\xfd7zXZ\x00", ".xz"),
    (b"{\\rtf", ".rtf"),
)
SIGNATURE_BYTES = max(len(magic) for magic, _ in SIGNATURES)
# An overlay this large is a payload even without a known signature.
LARGE_OVERLAY_BYTES = 1024 * 1024
MAX_RESOURCES = 5000
ZIP_END = b"PK\x05\x06"
ZIP_END_SIZE = 22
ZIP_END_SEARCH = 64 * 1024 + ZIP_END_SIZE
# Extractors that unpack the overlay themselves tag the file; their overlays are not emitted again.
OVERLAY_OWNERS = ("installer:nsis", "installer:inno", "installer:installshield", "pyinstaller", "autoit")


def signature_of(data: bytes) -> str | None:
    for magic, extension in SIGNATURES:
        if data.startswith(magic):
            return extension
    return None


def read_at(handle: IO[bytes], offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def zip_start(handle: IO[bytes], start: int, end: int) -> int | None:
    """Where a ZIP ending at `end` begins, when the region [start, end) ends with one."""
    tail_start = max(start, end - ZIP_END_SEARCH)
    tail = read_at(handle, tail_start, end - tail_start)
    position = tail.rfind(ZIP_END)
    if position < 0 or len(tail) - position < ZIP_END_SIZE:
        return None
    record = tail[position : position + ZIP_END_SIZE]
    directory_size = int.from_bytes(record[12:16], "little")
    directory_offset = int.from_bytes(record[16:20], "little")
    begin = tail_start + position - directory_size - directory_offset
    if begin < start or read_at(handle, begin, 4) != b"PK\x03\x04":
        return None
    return begin


def chunks(handle: IO[bytes], offset: int, size: int, block: int = 1024 * 1024) -> Iterator[bytes]:
    handle.seek(offset)
    while size > 0 and (data := handle.read(min(block, size))):
        size -= len(data)
        yield data


def resource_name(entry: pefile.ResourceDirEntryData) -> str:
    if entry.name is not None:
        return str(entry.name)
    return str(entry.struct.Id)


def resources(pe: pefile.PE) -> Iterator[tuple[str, int, int]]:
    """(path, file offset, size) of every resource's data, at most MAX_RESOURCES."""
    seen = 0
    for kind in getattr(getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None), "entries", []):
        type_name = (
            str(kind.name)
            if kind.name is not None
            else pefile.RESOURCE_TYPE.get(kind.struct.Id, str(kind.struct.Id)).removeprefix("RT_")
        )
        for entry in getattr(getattr(kind, "directory", None), "entries", []):
            for language in getattr(getattr(entry, "directory", None), "entries", []):
                seen += 1
                if seen > MAX_RESOURCES:
                    return
                data = getattr(language, "data", None)
                if data is None:
                    continue
                offset = pe.get_offset_from_rva(data.struct.OffsetToData)
                name = f"{type_name}/{resource_name(entry)}/{language.struct.Id}"
                yield name, offset, data.struct.Size


def overlay_payload(context: FileContext, handle: IO[bytes], start: int) -> tuple[int, str] | None:
    """Where the overlay's payload starts and the child's name suffix, or None to leave it."""
    extension = signature_of(read_at(handle, start, SIGNATURE_BYTES))
    if extension is not None:
        return start, extension
    begin = zip_start(handle, start, context.size)
    if begin is not None:
        return begin, ".zip"
    if context.size - start >= LARGE_OVERLAY_BYTES:
        return start, ".bin"
    return None


def extract(context: FileContext) -> Findings:
    # pefile reads a mapping of ours: its own close() runs a full gc.collect() (tens of ms).
    with context.path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        try:
            pe = pefile.PE(data=view, fast_load=True)
        except pefile.PEFormatError:
            return {}  # the pe analyzer reports broken headers; nothing to locate payloads by
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]])
        overlay_start = pe.get_overlay_data_start_offset()
        found = list(resources(pe))
        del pe
    story: list[str] = []
    with context.path.open("rb") as handle:
        for name, offset, size in found:
            if offset + size > context.size or size < 4:
                continue
            extension = signature_of(read_at(handle, offset, SIGNATURE_BYTES))
            if extension is None:
                continue
            context.extraction.members += 1
            context.extract(f"resources/{name}{extension}", chunks(handle, offset, size), size)
            story.append(f"A resource ({name}) holds a {extension[1:].upper()} file.")
        owned = [tag for tag in OVERLAY_OWNERS if tag in context.tags]
        if overlay_start is not None and overlay_start < context.size and not owned:
            payload = overlay_payload(context, handle, overlay_start)
            if payload is not None:
                begin, extension = payload
                size = context.size - begin
                context.extraction.members += 1
                context.extract(f"overlay@{begin:#x}{extension}", chunks(handle, begin, size), size)
                story.append(f"The overlay at offset {begin:#x} ({size} bytes) was unpacked.")
    log = context.extraction
    if not story and log.format == NAME and not (log.children or log.skipped or log.limits):
        # Most PE files carry no payload: they are not containers, so no `archive` section.
        log.format = ""
    return {"story": story} if story else {}


ANALYZER = Analyzer(name=NAME, version="1", run=extract, accepts=("PE",), extracts=True)
