"""ar extractor: Unix archives (static libraries, GNU and BSD long names) and Debian packages.

A .deb is an ar of `debian-binary`, `control.tar.*` and `data.tar.*`; its tarballs are
children that the tar extractor opens in turn. Members are read one at a time from the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from worker.analysis.context import BLOCK, Analyzer, FileContext, Findings

AR_MAGIC = b"!<arch>\n"
HEADER_SIZE = 60
MAX_NAME_TABLE_BYTES = 16 * 1024**2
SYMBOL_TABLES = ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED")


class ArError(ValueError):
    """The archive is damaged or truncated."""


def member_blocks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    while size > 0:
        block = stream.read(min(BLOCK, size))
        if not block:
            raise ArError("truncated in a member's data")
        size -= len(block)
        yield block


def member_name(raw: str, stream: IO[bytes], size: int, long_names: bytes) -> tuple[str, int]:
    """The member's name and the size of its data once a BSD name stored in front is read."""
    if raw.startswith("#1/"):  # BSD: the name is the first N bytes of the data
        length = int(raw[3:])
        if length > size:
            raise ArError(f"a BSD name of {length} bytes in a member of {size}")
        return stream.read(length).rstrip(b"\0").decode("utf-8", "surrogateescape"), size - length
    if raw.startswith("/") and raw[1:].isdigit():  # GNU: an offset in the `//` table
        offset = int(raw[1:])
        end = long_names.find(b"/\n", offset)
        return long_names[offset : end if end >= 0 else None].decode("utf-8", "surrogateescape"), size
    return raw.removesuffix("/") if raw not in SYMBOL_TABLES else raw, size


def read_archive(context: FileContext, stream: IO[bytes]) -> list[str]:
    if stream.read(len(AR_MAGIC)) != AR_MAGIC:
        return ["ar: not an ar archive (thin archives hold no data)"]
    long_names = b""
    while header := stream.read(HEADER_SIZE):
        if len(header) < HEADER_SIZE or header[58:60] != b"`\n":
            return ["ar: truncated or damaged member header"]
        raw = header[:16].decode("utf-8", "surrogateescape").rstrip(" ")
        try:
            size = int(header[48:58].strip() or b"0")
        except ValueError:
            return [f"ar: bad size in the header of {raw!r}"]
        padding = size % 2
        try:
            if raw == "//":
                if size > MAX_NAME_TABLE_BYTES:
                    return [f"ar: a long-name table of {size} bytes"]
                long_names = stream.read(size)
            elif raw in SYMBOL_TABLES:
                stream.seek(size, 1)
            else:
                name, size = member_name(raw, stream, size, long_names)
                context.extraction.members += 1
                context.extract(name, member_blocks(stream, size))
        except (ArError, ValueError) as error:
            return [f"ar: {error}"]
        stream.read(padding)
    return []


def extract(context: FileContext) -> Findings:
    with context.path.open("rb") as stream:
        errors = read_archive(context, stream)
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(name="ar", version="1", run=extract, accepts=("Archive/AR", "Archive/DEB"), extracts=True)
