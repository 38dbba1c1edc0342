"""TAR extractor: v7, ustar, GNU (long names, sparse) and pax tarballs, plain or compressed, in one level.

A compressed tarball (.tgz, .tar.bz2, .tar.xz, .tar.lzma, .tar.zst, .tar.lz4, .tar.Z) is
read through its decompressor straight into its members, so the tarball inside is not
reported as a file of its own. Members are read one header at a time and forgotten once
extracted, so a tarball of many entries costs no memory up front. A damaged header ends
the walk with an error; the members before it are kept. Links and device files are
reported as skipped, never followed or created.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.decoders.streams import STREAM_ERRORS, open_stream
from worker.analysis.identify import COMPRESSED_KINDS


def is_tarball(context: FileContext) -> bool:
    return context.is_a("Archive", "TAR") or "compressed-tar" in context.tags


def damage_after(archive: tarfile.TarFile, stream: BinaryIO) -> str | None:
    """Why the walk stopped early, if it did: the block where the next header should be is not empty."""
    try:
        stream.seek(archive.offset)
        block = stream.read(tarfile.BLOCKSIZE)
    except STREAM_ERRORS as error:
        return f"tar stream damaged after offset {archive.offset}: {error}"
    if block.strip(b"\0"):
        return f"tar header at offset {archive.offset} is damaged; members after it were not read"
    return None


def walk(context: FileContext, stream: BinaryIO) -> list[str]:
    errors: list[str] = []
    with tarfile.open(fileobj=stream, mode="r:") as archive:
        while True:
            context.check_time("reading tar headers")
            try:
                member = archive.next()
            except tarfile.ReadError as error:
                errors.append(f"tar header at offset {archive.offset} unreadable: {error}")
                break
            if member is None:
                if (damage := damage_after(archive, stream)) is not None:
                    errors.append(damage)
                break
            # tarfile keeps every header it has read (for links, which are skipped here).
            archive.members.clear()  # type: ignore[attr-defined]
            if member.isdir():
                continue
            context.extraction.members += 1
            if not member.isreg():
                kind = "link" if member.issym() or member.islnk() else "special file"
                context.skip(member.name, kind)
                continue
            source = archive.extractfile(member)
            if source is not None:
                # Members are stored as they are (only sparse ones expand): the ratio is
                # judged against the whole tarball.
                context.extract(member.name, source)
    return errors


def extract(context: FileContext) -> Findings:
    kind = context.identity.get("file_subtype", "")
    with context.path.open("rb") as raw:
        try:
            if kind in COMPRESSED_KINDS and "compressed-tar" in context.tags:
                with open_stream(kind, raw) as stream:
                    errors = walk(context, stream)
            else:
                errors = walk(context, raw)
        except tarfile.ReadError as error:
            errors = [f"not a readable tarball: {error}"]
        except STREAM_ERRORS as error:
            errors = [f"{kind.lower() or 'tar'} stream damaged: {error}"]
    return {"errors": errors} if errors else {}


ANALYZER = Analyzer(
    name="tar",
    version="3",
    run=extract,
    accepts=("Archive/TAR", *(f"Archive/{kind}" for kind in COMPRESSED_KINDS)),
    when=is_tarball,
    extracts=True,
)
