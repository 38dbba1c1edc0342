"""RPM extractor: the lead and headers are read for the package's name, the payload's files are extracted.

The cpio payload (gzip, bzip2, xz, lzma or zstd) is decompressed as a stream straight into
the cpio reader, so the package's files are its children, one nesting level down.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import importlib
import lzma
import zlib
from typing import IO, Any

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.extractors.cpio import read_cpio

LEAD_SIZE = 96
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
MAX_HEADER_BYTES = 64 * 1024**2
NAME_TAGS = {1000: "name", 1001: "version", 1002: "release", 1022: "arch"}
STRING_TYPE = 6
STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


PAYLOAD_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x5d\x00\x00", "lzma"),
    (b"0707", "none"),
)


def open_payload(kind: str, stream: IO[bytes]) -> Any:
    """A decompressing reader over the payload."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream)
    if kind == "bzip2":
        return bz2.BZ2File(stream)
    if kind in ("xz", "lzma"):
        return lzma.LZMAFile(stream, format=lzma.FORMAT_ALONE if kind == "lzma" else lzma.FORMAT_AUTO)
    if kind == "zstd":
        # The standard library has zstd from 3.14; before, the backport py7zr already depends on.
        try:
            module: Any = importlib.import_module("compression.zstd")
        except ImportError:
            module = importlib.import_module("backports.zstd")
        return module.ZstdFile(stream)
    return contextlib.nullcontext(stream)


class RpmError(ValueError):
    """The package's lead or headers are damaged."""


def read_header(stream: IO[bytes]) -> tuple[dict[str, str], int]:
    """The names a header structure holds and its size; the stream is left after it."""
    intro = stream.read(16)
    if len(intro) != 16 or intro[:4] != HEADER_MAGIC:
        raise RpmError("no header structure where one was expected")
    entries, store_size = int.from_bytes(intro[8:12], "big"), int.from_bytes(intro[12:16], "big")
    if 16 * entries + store_size > MAX_HEADER_BYTES:
        raise RpmError(f"a header of {16 * entries + store_size} bytes")
    index = stream.read(16 * entries)
    store = stream.read(store_size)
    if len(index) != 16 * entries or len(store) != store_size:
        raise RpmError("truncated header")
    names: dict[str, str] = {}
    for start in range(0, len(index), 16):
        tag, kind, offset = (int.from_bytes(index[start + i : start + i + 4], "big") for i in (0, 4, 8))
        if tag in NAME_TAGS and kind == STRING_TYPE and offset < store_size:
            end = store.find(b"\0", offset)
            names[NAME_TAGS[tag]] = store[offset : end if end >= 0 else None].decode("utf-8", "replace")
    return names, 16 + 16 * entries + store_size


def extract(context: FileContext) -> Findings:
    with context.path.open("rb") as stream:
        lead = stream.read(LEAD_SIZE)
        if len(lead) != LEAD_SIZE or lead[:4] != b"\xed\xab\xee\xdb":
            return {"errors": ["rpm: no RPM lead"]}
        try:
            _, signature_size = read_header(stream)
            stream.read(-signature_size % 8)  # the signature is padded to 8 bytes
            names, _ = read_header(stream)
        except RpmError as error:
            return {"errors": [f"rpm: {error}"]}
        payload_start = stream.tell()
        magic = stream.read(6)
        stream.seek(payload_start)
        kind = next((name for prefix, name in PAYLOAD_MAGICS if magic.startswith(prefix)), None)
        findings: Findings = {"metadata": {"rpm": {**names, "payload_compression": kind or ""}}}
        if kind is None:
            findings["errors"] = [f"rpm: unknown payload compression (starts {magic.hex()})"]
            return findings
        try:
            with open_payload(kind, stream) as payload:
                errors = read_cpio(context, payload)
        except STREAM_ERRORS as error:
            errors = [f"rpm: {kind} payload damaged: {error}"]
    if errors:
        findings["errors"] = errors
    return findings


ANALYZER = Analyzer(name="rpm", version="1", run=extract, accepts=("Archive/RPM",), extracts=True)
