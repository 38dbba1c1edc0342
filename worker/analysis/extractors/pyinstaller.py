"""PyInstaller extractor: the members of a PyInstaller executable's CArchive (scripts, PYZ, data, DLLs).

The CArchive is a small documented format (PyInstaller's `archive/readers.py`): a cookie at
its end (magic `MEI\\x0c\\x0b\\x0a\\x0b\\x0e`, package length, TOC offset and length, Python
version, Python library name), then a table of contents whose entries give each member's
offset, sizes, zlib flag, type code and name. It is read here directly, one TOC entry at a
time, each member inflated block by block into the extraction budget. The PYZ archive of
pure-Python modules is emitted whole: its table is a marshal stream, which is not safe to
load from an untrusted file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import IO

from worker.analysis.context import Analyzer, FileContext, Findings

MAGIC = b"MEI\x0c\x0b\x0a\x0b\x0e"
COOKIE = struct.Struct("!8sIIii64s")  # PyInstaller 2.1 and later
COOKIE_OLD = struct.Struct("!8sIIii")  # PyInstaller 2.0
TOC_ENTRY = struct.Struct("!IIIIBc")
# The cookie ends the archive; a signature or an ELF section table may follow it.
COOKIE_SEARCH_BYTES = 4 * 1024 * 1024
MAX_NAME_BYTES = 4096
BLOCK = 1024 * 1024
# Type codes without content of their own: run-time options and references to other archives.
NO_CONTENT = {b"o", b"d"}
ACCEPTS = ("PE", "ELF", "MachO", "Binary")


def find_cookie(handle: IO[bytes], size: int) -> int | None:
    """The offset of the last CArchive cookie in the file's last COOKIE_SEARCH_BYTES."""
    start = max(0, size - COOKIE_SEARCH_BYTES)
    handle.seek(start)
    position = handle.read(size - start).rfind(MAGIC)
    return None if position < 0 else start + position


def is_pyinstaller(context: FileContext) -> bool:
    with context.path.open("rb") as handle:
        return find_cookie(handle, context.size) is not None


def read_cookie(handle: IO[bytes], offset: int, size: int) -> tuple[int, int, int, int, str]:
    """(package start, TOC offset, TOC length, Python version, Python library) from the cookie."""
    handle.seek(offset)
    raw = handle.read(COOKIE.size)
    if len(raw) == COOKIE.size:
        _, package, toc, toc_length, python, library = COOKIE.unpack(raw)
        cookie_size = COOKIE.size
        library_name = library.split(b"\0", 1)[0].decode("utf-8", "replace")
        # 2.0 cookies are shorter: what follows is no library name.
        if not library_name.isprintable() or not library_name.lower().startswith(("python", "libpython")):
            cookie_size, library_name = COOKIE_OLD.size, ""
    elif len(raw) >= COOKIE_OLD.size:
        _, package, toc, toc_length, python = COOKIE_OLD.unpack(raw[: COOKIE_OLD.size])
        cookie_size, library_name = COOKIE_OLD.size, ""
    else:
        raise ValueError("truncated CArchive cookie")
    start = offset + cookie_size - package
    if start < 0 or toc_length < 0 or start + toc + toc_length > offset:
        raise ValueError("CArchive cookie points outside the file")
    return start, start + toc, toc_length, python, library_name


def toc_entries(
    handle: IO[bytes], offset: int, length: int
) -> Iterator[tuple[int, int, int, bool, bytes, str]]:
    """(offset in package, packed size, size, compressed, type code, name), one entry at a time."""
    position, end = offset, offset + length
    while position + TOC_ENTRY.size <= end:
        handle.seek(position)
        entry_size, data_offset, packed, size, flag, code = TOC_ENTRY.unpack(handle.read(TOC_ENTRY.size))
        name_length = entry_size - TOC_ENTRY.size
        if entry_size <= TOC_ENTRY.size or name_length > MAX_NAME_BYTES or position + entry_size > end:
            raise ValueError(f"malformed CArchive TOC entry at offset {position}")
        name = handle.read(name_length).split(b"\0", 1)[0].decode("utf-8", "replace")
        yield data_offset, packed, size, flag == 1, code, name
        position += entry_size


def member_blocks(handle: IO[bytes], offset: int, packed: int, compressed: bool) -> Iterator[bytes]:
    handle.seek(offset)
    inflater = zlib.decompressobj() if compressed else None
    left = packed
    while left > 0 and (data := handle.read(min(BLOCK, left))):
        left -= len(data)
        if inflater is None:
            yield data
            continue
        while data:
            # max_length bounds the memory one block of a bomb can take.
            yield inflater.decompress(data, BLOCK)
            data = inflater.unconsumed_tail
    if left > 0:
        raise ValueError("member runs past the end of the file")
    if inflater is not None:
        yield inflater.flush()


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with context.path.open("rb") as toc_handle, context.path.open("rb") as data_handle:
        cookie = find_cookie(toc_handle, context.size)
        if cookie is None:
            return {}
        start, toc, toc_length, python, library = read_cookie(toc_handle, cookie, context.size)
        entries = 0
        try:
            for data_offset, packed, _size, compressed, code, name in toc_entries(
                toc_handle, toc, toc_length
            ):
                entries += 1
                if code in NO_CONTENT or packed == 0:
                    continue
                context.extraction.members += 1
                if start + data_offset + packed > cookie:
                    context.skip(name, "member lies outside the archive")
                    continue
                try:
                    context.extract(
                        name, member_blocks(data_handle, start + data_offset, packed, compressed), packed
                    )
                except zlib.error as error:
                    context.skip(name, f"zlib: {error}")
        except ValueError as error:
            errors.append(str(error))
    metadata = {"python_version": python, "python_library": library, "toc_entries": entries}
    findings: Findings = {
        "metadata": {"application": {"pyinstaller": metadata}},
        "tags": ["pyinstaller"],
        "story": [f"The file is a PyInstaller bundle; its archive holds {entries} entries."],
    }
    if errors:
        findings["errors"] = errors
    return findings


ANALYZER = Analyzer(
    name="pyinstaller", version="1", run=extract, accepts=ACCEPTS, when=is_pyinstaller, extracts=True
)
