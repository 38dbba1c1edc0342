"""Single-stream decompressors: gzip, bzip2, xz, LZMA alone, Zstandard, LZ4 and .Z, each giving one child.

The child's name comes from the file's (`report.pdf.gz` gives `report.pdf`). The stream is
decoded one block at a time into the child writer, so the limits stop a bomb while it
expands. A truncated stream still yields what came before the damage, with an error
saying where it stopped.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from worker.analysis.context import Analyzer, FileContext, Findings, LimitReached
from worker.analysis.decoders.streams import STREAM_ERRORS, open_stream

SUFFIXES = {
    "GZIP": {".gz": "", ".tgz": ".tar", ".gzip": ""},
    "BZIP2": {".bz2": "", ".tbz2": ".tar", ".tbz": ".tar"},
    "XZ": {".xz": "", ".txz": ".tar"},
    "LZMA": {".lzma": "", ".tlz": ".tar"},
    "ZSTD": {".zst": "", ".zstd": "", ".tzst": ".tar"},
    "LZ4": {".lz4": ""},
    "COMPRESS": {".z": "", ".taz": ".tar"},
}
BLOCK = 1024 * 1024


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
    errors: list[str] = []
    with context.path.open("rb") as raw:
        writer = context.child_writer(name)
        try:
            with open_stream(kind, raw) as source:
                while block := source.read(BLOCK):
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
    version="3",
    run=extract,
    accepts=tuple(f"Archive/{kind}" for kind in SUFFIXES),
    when=is_single_stream,
    extracts=True,
)
