"""One file as a multipart upload, streamed from disk and hashed on the way.

The body is written here rather than by aiohttp's FormData so that its length is known
before it is sent (a Content-Length, not chunked encoding, so a service can refuse a file
over its limit at once) while the file is read block by block in a thread: memory stays
flat whatever the file's size, and the event loop keeps serving the other uploads.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO

from cli.client import BodyError
from cli.files import LocalFile

BLOCK = 256 * 1024


class FileChanged(BodyError):
    """The file changed or became unreadable while it was being sent: the upload is abandoned."""


def disposition_name(name: str) -> str:
    """A file name for a form part's header: quotes, backslashes and control characters
    (line breaks, ESC...) percent-encoded, as browsers do for quotes and line breaks (WHATWG
    multipart/form-data), so no name can break the header or be refused as an invalid one;
    bytes of the name that are not UTF-8 (`b"\\xffbad.bin"` on a Linux file system)
    percent-encoded too (`%FFbad.bin`), so any name the file system holds can be sent."""
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate that no file system name decodes to
        raw = name.encode("utf-8", "surrogatepass")
    return "".join(header_character(character) for character in raw.decode("utf-8", "surrogateescape"))


def header_character(character: str) -> str:
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
        return f"%{code - 0xDC00:02X}"
    if code < 0x20 or code == 0x7F or character in '"\\':
        return f"%{code:02X}"
    return character


def open_selected(file: LocalFile) -> BinaryIO:
    """`file` opened for reading, once sure that it is still the file selected: the walk saw a
    regular file at that path, but a link, a FIFO or another file may have taken its place
    since. A file found in a folder is opened without following a link (a path named on the
    command line may be one: it is followed, as documented), and what was opened must be the
    (device, inode) the selection saw. Never blocks: a FIFO is opened non-blocking, then refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if file.walked:
        flags |= os.O_NOFOLLOW
    try:
        descriptor = os.open(file.path, flags)
    except OSError as error:
        if file.walked and error.errno in (errno.ELOOP, errno.EMLINK):
            raise FileChanged("it was replaced by a symbolic link since it was selected") from None
        raise
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or (
            file.identity != (0, 0) and (info.st_dev, info.st_ino) != file.identity
        ):
            raise FileChanged("it was replaced by another file since it was selected")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


class MultipartFile:
    """The body of `POST /upload` with one part `file`; `sha256` is complete once sent."""

    def __init__(self, handle: BinaryIO, name: str, size: int, on_bytes: Callable[[int], None]):
        self.handle, self.size, self.on_bytes = handle, size, on_bytes
        boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{disposition_name(name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.hasher = hashlib.sha256()
        self.sent = 0

    @property
    def headers(self) -> dict[str, str]:
        length = len(self.head) + self.size + len(self.tail)
        return {"Content-Type": self.content_type, "Content-Length": str(length)}

    def read_block(self) -> bytes:
        try:
            block = self.handle.read(BLOCK)
        except OSError as error:  # told apart from the network's errors, and not retried
            raise FileChanged(f"reading the file failed: {error.strerror or error}") from None
        self.hasher.update(block)
        return block

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body from its first byte: each attempt (after a 503, say) starts it afresh."""
        self.handle.seek(0)
        self.hasher, self.sent = hashlib.sha256(), 0
        yield self.head
        while block := await asyncio.to_thread(self.read_block):
            self.sent += len(block)
            if self.sent > self.size:
                raise FileChanged(f"the file grew while it was sent (more than {self.size} bytes)")
            self.on_bytes(len(block))
            yield block
        if self.sent != self.size:
            raise FileChanged(f"the file shrank while it was sent ({self.sent} of {self.size} bytes)")
        yield self.tail

    @property
    def sha256(self) -> str:
        return self.hasher.hexdigest()
