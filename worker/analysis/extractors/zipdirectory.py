"""A ZIP reader that walks the central directory one entry at a time, in bounded memory.

Python's zipfile (and pyzipper, built on it) parses the whole central directory into
ZipInfo objects when an archive is opened: a small file declaring 400,000 entries costs
hundreds of megabytes before the first member is read. `StreamingZipFile` only locates the
central directory when opened; `entries()` then reads it in blocks and yields one ZipInfo at
a time, which `open()` accepts as it would one of its own. Callers stop iterating when their
limits say so, so a hostile directory costs no more than the entries actually visited.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pyzipper
from pyzipper import zipfile as pyzipper_zipfile

CENTRAL_HEADER_SIZE = pyzipper_zipfile.sizeCentralDir
CENTRAL_HEADER = pyzipper_zipfile.structCentralDir
CENTRAL_SIGNATURE = pyzipper_zipfile.stringCentralDir
READ_BLOCK = 256 * 1024


class StreamingZipFile(pyzipper.AESZipFile):
    """An AES-capable ZipFile whose table of contents is read lazily by `entries()`."""

    directory_offset = 0
    directory_size = 0
    concat = 0
    declared_entries = 0

    def _RealGetContents(self) -> None:
        """Locate the central directory without parsing it (zipfile calls this on open)."""
        z = pyzipper_zipfile
        try:
            end_record = z._EndRecData(self.fp)
        except OSError as error:
            raise pyzipper.BadZipFile("File is not a zip file") from error
        if not end_record:
            raise pyzipper.BadZipFile("File is not a zip file")
        size = end_record[z._ECD_SIZE]
        offset = end_record[z._ECD_OFFSET]
        self._comment = end_record[z._ECD_COMMENT]
        # Non-zero when the zip was appended to another file (a self-extractor, a polyglot).
        concat = end_record[z._ECD_LOCATION] - size - offset
        if end_record[z._ECD_SIGNATURE] == z.stringEndArchive64:
            concat -= z.sizeEndCentDir64 + z.sizeEndCentDir64Locator
        self.start_dir = offset + concat
        self.directory_offset, self.directory_size, self.concat = self.start_dir, size, concat
        self.declared_entries = end_record[z._ECD_ENTRIES_TOTAL]

    def entries(self) -> Iterator[Any]:
        """Each central directory entry as a ZipInfo, read as it is needed."""
        if self.filename is None:
            raise ValueError("StreamingZipFile reads from a path")
        with open(self.filename, "rb") as directory:
            directory.seek(self.directory_offset)
            reader = BlockReader(directory, self.directory_size)
            while True:
                fixed = reader.take(CENTRAL_HEADER_SIZE)
                if fixed is None:
                    return
                header = struct.unpack(CENTRAL_HEADER, fixed)
                if header[0] != CENTRAL_SIGNATURE:
                    raise pyzipper.BadZipFile("Bad magic number for central directory")
                variable = reader.take(header[12] + header[13] + header[14])
                if variable is None:
                    raise pyzipper.BadZipFile("Truncated central directory")
                yield self.entry(header, variable)

    def entry(self, header: tuple[Any, ...], record: bytes) -> Any:
        """One ZipInfo from a central directory record (its fixed header and the variable part
        holding name, extra field and comment), as zipfile itself would build it."""
        name_end = header[12]
        extra_end = name_end + header[13]
        raw_name = record[:name_end]
        flags = header[5]
        name = raw_name.decode("utf-8" if flags & pyzipper_zipfile._MASK_UTF_FILENAME else "cp437")
        info = self.zipinfo_cls(name)
        info.extra = record[name_end:extra_end]
        info.comment = record[extra_end:]
        (
            info.create_version,
            info.create_system,
            info.extract_version,
            info.reserved,
            info.flag_bits,
            info.compress_type,
            time_field,
            date_field,
            info.CRC,
            info.compress_size,
            info.file_size,
        ) = header[1:12]
        info.volume, info.internal_attr, info.external_attr = header[15:18]
        info._raw_time = time_field
        info.date_time = (
            (date_field >> 9) + 1980,
            (date_field >> 5) & 0xF,
            date_field & 0x1F,
            time_field >> 11,
            (time_field >> 5) & 0x3F,
            (time_field & 0x1F) * 2,
        )
        info.header_offset = header[18]
        info._decodeExtra()
        info.header_offset += self.concat
        return info


class BlockReader:
    """Hands out exact-sized pieces of a region of a file, reading it in blocks."""

    def __init__(self, handle: Any, size: int):
        self.handle, self.left = handle, size
        self.buffer, self.position = b"", 0

    def take(self, size: int) -> bytes | None:
        """The next `size` bytes, or None when the region ends first."""
        while len(self.buffer) - self.position < size:
            if self.left <= 0:
                return None
            block = self.handle.read(min(READ_BLOCK, self.left))
            if not block:
                return None
            self.left -= len(block)
            self.buffer = self.buffer[self.position :] + block
            self.position = 0
        piece = self.buffer[self.position : self.position + size]
        self.position += size
        return piece
