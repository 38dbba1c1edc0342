"""7z extractor (py7zr): LZMA/LZMA2/BZip2/Deflate/PPMd/ZStandard members, AES with the password list.

py7zr pushes decompressed data into writers it asks a factory for; each writer here is a
child writer of the extraction budget, so limits apply while py7zr decompresses.
"""

from __future__ import annotations

import contextlib
import lzma
import os

import py7zr
import py7zr.exceptions
import py7zr.io

from worker.analysis.context import Analyzer, ChildWriter, FileContext, Findings, HeuristicHit, hit

ARCHIVE_ERRORS = (
    py7zr.exceptions.ArchiveError,
    py7zr.exceptions.PasswordRequired,
    lzma.LZMAError,
    ValueError,
    OSError,
    EOFError,
)


class ChildOutput(py7zr.io.Py7zIO):
    """A py7zr output that is a child writer."""

    def __init__(self, writer: ChildWriter):
        self.writer = writer

    def write(self, data: bytes | bytearray) -> int:
        self.writer.write(data)
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.writer.written

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.writer.written

    def close(self) -> None:
        if not self.writer.handle.closed:
            self.writer.keep()


class ChildFactory(py7zr.io.WriterFactory):
    def __init__(self, context: FileContext):
        self.context = context
        self.writers: list[ChildWriter] = []

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        # py7zr hands over its sanitized output path; report the name inside the archive.
        with contextlib.suppress(ValueError):
            filename = os.path.relpath(filename, os.getcwd())
        self.context.extraction.members += 1
        writer = self.context.child_writer(filename)
        self.writers.append(writer)
        return ChildOutput(writer)

    def drop_unfinished(self) -> None:
        for writer in self.writers:
            if not writer.handle.closed:
                writer.drop()


def needs_password(context: FileContext) -> bool:
    try:
        with py7zr.SevenZipFile(context.path) as probe:
            return bool(probe.needs_password())
    except py7zr.exceptions.PasswordRequired:
        return True  # even the file names are encrypted (7z -mhe=on)


def extract(context: FileContext) -> Findings:
    encrypted = needs_password(context)
    candidates = context.passwords() if encrypted else [(b"", "")]
    extraction = context.extraction
    for number, (password, source) in enumerate(candidates):
        context.check_time("trying passwords on the 7z archive")
        factory = ChildFactory(context)
        kept_before = len(extraction.children)
        try:
            with py7zr.SevenZipFile(
                context.path, password=password.decode() if encrypted else None
            ) as archive:
                archive.extractall(factory=factory)
        except ARCHIVE_ERRORS as error:
            factory.drop_unfinished()
            if encrypted:
                for child in extraction.children[kept_before:]:
                    child.path.unlink(missing_ok=True)
                del extraction.children[kept_before:]
                extraction.members = 0
                if number + 1 < len(candidates):
                    continue
                context.skip(context.file_name or "7z", "no password matched")
                hits: list[HeuristicHit] = [hit("archive:password-unknown", context.file_name)]
                return {
                    "heuristics": hits,
                    "story": ["The 7z archive is encrypted with an unknown password."],
                }
            return {"errors": [f"7z: {type(error).__name__}: {error}"]}
        except BaseException:
            factory.drop_unfinished()
            raise
        if encrypted:
            extraction.password_source = source
            return {"heuristics": [hit("archive:encrypted", source)]}
        return {}
    return {}


ANALYZER = Analyzer(name="7z", version="2", run=extract, accepts=("Archive/7ZIP",), extracts=True)
