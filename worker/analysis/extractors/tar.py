"""TAR extractor: plain tarballs and compressed ones (.tgz, .tar.bz2, .tar.xz) in one level.

A compressed tarball is read through its decompressor straight into its members, so the
tarball inside is not reported as a file of its own. Links and device files are reported
as skipped, never followed or created.
"""

from __future__ import annotations

import tarfile

from worker.analysis.context import Analyzer, FileContext, Findings


def is_tarball(context: FileContext) -> bool:
    return context.is_a("Archive", "TAR") or "compressed-tar" in context.tags


def extract(context: FileContext) -> Findings:
    with tarfile.open(context.path, mode="r:*") as archive:
        for member in archive:
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
    return {}


ANALYZER = Analyzer(
    name="tar",
    version="2",
    run=extract,
    accepts=("Archive/TAR", "Archive/GZIP", "Archive/BZIP2", "Archive/XZ"),
    when=is_tarball,
    extracts=True,
)
