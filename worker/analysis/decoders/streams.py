"""Decompressing file objects for every single-stream compression, by report subtype.

Shared by the decompress and tar extractors and by identification (is it a compressed
tarball?). Each object reads its source a block at a time, so memory stays bounded by the
format's block size, and seeks forward only by decoding (what tarfile needs).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import lz4.frame

from worker.analysis.decoders import lzw

try:  # the standard library's from Python 3.14
    from compression import zstd
except ImportError:
    from backports import zstd

# zstd frames may ask for any window; libzstd's own default ceiling (128 MiB) is kept explicit.
ZSTD_MAX_WINDOW_LOG = 27


class GeneratedStream(io.RawIOBase):
    """A readable, forward-seekable file object over a generator of byte blocks."""

    def __init__(self, blocks: Iterator[bytes]):
        self.blocks = blocks
        self.pending = b""
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            block = next(self.blocks, None)
            if block is None:
                return 0
            self.pending = block
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        self.position += size
        return size

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.position:
            raise OSError("this stream seeks forward only")
        while self.position < target and self.read(min(target - self.position, 1024 * 1024)):
            pass
        return self.position


def open_gzip(source: BinaryIO) -> BinaryIO:
    return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]


def open_bzip2(source: BinaryIO) -> BinaryIO:
    return bz2.BZ2File(source, "rb")  # type: ignore[return-value]


def open_xz(source: BinaryIO) -> BinaryIO:
    return lzma.LZMAFile(source, "rb")  # type: ignore[return-value]


def open_lzma_alone(source: BinaryIO) -> BinaryIO:
    return lzma.LZMAFile(source, "rb", format=lzma.FORMAT_ALONE)  # type: ignore[return-value]


def open_zstd(source: BinaryIO) -> BinaryIO:
    options = {zstd.DecompressionParameter.window_log_max: ZSTD_MAX_WINDOW_LOG}
    return zstd.ZstdFile(source, "rb", options=options)


def open_lz4(source: BinaryIO) -> BinaryIO:
    return lz4.frame.LZ4FrameFile(source, "rb")


def open_compress(source: BinaryIO) -> BinaryIO:
    return io.BufferedReader(GeneratedStream(lzw.decompress(source.read)), 64 * 1024)


OPENERS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "GZIP": open_gzip,
    "BZIP2": open_bzip2,
    "XZ": open_xz,
    "LZMA": open_lzma_alone,
    "ZSTD": open_zstd,
    "LZ4": open_lz4,
    "COMPRESS": open_compress,
}
# What a damaged or truncated stream raises, whatever its format (lz4 says RuntimeError).
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    lzma.LZMAError,
    zlib.error,
    zstd.ZstdError,
)


def open_stream(kind: str, source: BinaryIO) -> BinaryIO:
    """The decompressed view of `source`, compressed as the report subtype `kind` says."""
    return OPENERS[kind](source)
