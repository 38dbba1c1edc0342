"""Single-stream decompressors: gzip, bzip2 and xz, each giving one child.

The child's name comes from the file's (`report.pdf.gz` gives `report.pdf`). A truncated
stream still yields what came before the damage, with an error saying where it stopped.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from worker.analysis.context import Analyzer, FileContext, Findings, LimitReached

SUFFIXES = {
    "GZIP": {".gz": "", ".tgz": ".tar", ".gzip": ""},
    "BZIP2": {".bz2": "", ".tbz2": ".tar", ".tbz": ".tar"},
    "XZ": {".xz": "", ".txz": ".tar"},
}
OPENERS: dict[str, Callable[..., Any]] = {"GZIP": gzip.open, "BZIP2": bz2.open, "XZ": lzma.open}
STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


def child_name(file_name: str, kind: str) -> str:
    name = PurePosixPath(file_name or "data")
    replacement = SUFFIXES[kind].get(name.suffix.lower())
    if replacement is None:
        return f"{name.name}.decompressed"
    return name.stem + replacement if not name.stem.endswith(replacement) else name.stem


def extract(context: FileContext) -> Findings:
    kind = context.identity["file_subtype"]
    name = child_name(context.file_name, kind)
    context.extraction.members = 1
    writer = context.child_writer(name)
    with OPENERS[kind](str(context.path), "rb") as source:
        errors: list[str] = []
        try:
            while block := source.read(1024 * 1024):
                writer.write(block)
        except LimitReached:
            writer.drop()
            raise
        except STREAM_ERRORS as error:
            errors.append(f"{kind.lower()} stream damaged after {writer.written} bytes: {error}")
        except BaseException:
            writer.drop()
            raise
        writer.keep()
    return {"errors": errors} if errors else {}


def is_single_stream(context: FileContext) -> bool:
    return "compressed-tar" not in context.tags


ANALYZER = Analyzer(
    name="decompress",
    version="2",
    run=extract,
    accepts=("Archive/GZIP", "Archive/BZIP2", "Archive/XZ"),
    when=is_single_stream,
    extracts=True,
)
