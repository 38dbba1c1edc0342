"""Unpacking: zip (incl. AES), tar, gzip, bz2, xz and 7z into spool files, under hard limits.

Every limit is checked on the bytes actually decompressed, one block at a time, so a lying
header cannot get past it: depth, number of children and total expanded bytes per task,
expansion ratio per member, and the per-file time. When a limit is hit the archive's
report says which, and the members already extracted are still analyzed.

A child is written to `<spool>/unpack-<random>-<n>`, never under a name from the archive;
the member's name is only reported (as `file_path`).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import secrets
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import py7zr
import py7zr.exceptions
import py7zr.io
import pyzipper

from worker.analysis.context import FileContext, indicator

BLOCK = 1024 * 1024
# Small members may have any ratio: a 1 MiB file of zeros harms nobody.
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_NAME_CHARS = 1024
ARCHIVE_SUBTYPES = {
    "ZIP": "zip",
    "JAR": "zip",
    "APK": "zip",
    "TAR": "tar",
    "GZIP": "gzip",
    "BZIP2": "bzip2",
    "XZ": "xz",
    "7ZIP": "7z",
}
OOXML_SUBTYPES = ("Word", "Excel", "PowerPoint", "OOXML")
STREAM_SUFFIXES = {
    "gzip": {".gz": "", ".tgz": ".tar", ".gzip": ""},
    "bzip2": {".bz2": "", ".tbz2": ".tar", ".tbz": ".tar"},
    "xz": {".xz": "", ".txz": ".tar"},
}
STREAM_OPENERS: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}


# pyzipper raises its own BadZipFile, not zipfile's.
BAD_ZIP = (zipfile.BadZipFile, pyzipper.BadZipFile)


class LimitReached(Exception):
    """A hard limit stopped an extraction; `limit` names it."""

    def __init__(self, limit: str, detail: str):
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


@dataclass
class Budget:
    """What one task may still extract, shared by all its archives at every level."""

    children_left: int
    bytes_left: int

    @classmethod
    def from_settings(cls, settings: Any) -> Budget:
        return cls(settings.unpack_max_children, settings.unpack_max_total_bytes)


@dataclass
class Child:
    path: Path  # generated spool name
    file_path: str  # name inside the archive, as reported
    size: int


@dataclass
class Extraction:
    archive_format: str
    children: list[Child] = field(default_factory=list)
    members: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    limits: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    password_source: str | None = None

    def discard(self) -> None:
        for child in self.children:
            child.path.unlink(missing_ok=True)


def archive_format(context: FileContext) -> str | None:
    identity = context.identity
    if identity["file_type"] == "Archive":
        return ARCHIVE_SUBTYPES.get(identity["file_subtype"])
    if identity["file_type"] == "Document" and identity["file_subtype"] in OOXML_SUBTYPES:
        return "zip" if context.head.startswith(b"PK\x03\x04") else None
    return None


def display_name(name: str) -> str:
    return name.replace("\0", "")[:MAX_NAME_CHARS]


class ChildWriter:
    """Writes one member to a fresh spool file, enforcing the byte, ratio and time limits."""

    def __init__(self, context: FileContext, budget: Budget, extraction: Extraction, name: str, packed: int):
        settings = context.settings
        self.context, self.budget, self.extraction = context, budget, extraction
        self.name = display_name(name)
        self.max_bytes = max(RATIO_FLOOR_BYTES, int(settings.unpack_max_ratio * max(1, packed)))
        spool_dir = settings.spool_dir
        self.path = spool_dir / f"unpack-{secrets.token_hex(8)}-{len(extraction.children)}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle: BinaryIO = os.fdopen(fd, "wb")
        self.written = 0

    def write(self, block: bytes) -> None:
        settings = self.context.settings
        self.written += len(block)
        self.budget.bytes_left -= len(block)
        if self.budget.bytes_left < 0:
            limit = settings.unpack_max_total_bytes
            raise LimitReached("total_bytes", f"{self.name}: more than {limit} bytes expanded in this task")
        if self.written > self.max_bytes:
            ratio = settings.unpack_max_ratio
            raise LimitReached("ratio", f"{self.name}: expands more than {ratio:g} times its packed size")
        if time.monotonic() > self.context.deadline:
            seconds = settings.analysis_file_time_limit_seconds
            raise LimitReached("time", f"{self.name}: unpacking exceeded {seconds:g} s")
        self.handle.write(block)

    def keep(self) -> Child:
        self.handle.close()
        child = Child(self.path, self.name, self.written)
        self.extraction.children.append(child)
        return child

    def drop(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def claim_child(budget: Budget, context: FileContext, name: str) -> None:
    if budget.children_left <= 0:
        raise LimitReached(
            "children", f"more than {context.settings.unpack_max_children} files unpacked in this task"
        )
    if time.monotonic() > context.deadline:
        seconds = context.settings.analysis_file_time_limit_seconds
        raise LimitReached("time", f"unpacking exceeded {seconds:g} s before {display_name(name)}")
    budget.children_left -= 1


def copy_member(writer: ChildWriter, read: Callable[[int], bytes]) -> None:
    try:
        while block := read(BLOCK):
            writer.write(block)
    except BaseException:
        writer.drop()
        raise
    writer.keep()


def password_candidates(context: FileContext) -> list[tuple[bytes, str]]:
    given = context.user_data.get("password_list") if isinstance(context.user_data, dict) else None
    candidates: list[tuple[bytes, str]] = []
    for password in given if isinstance(given, list) else []:
        candidates.append((str(password).encode("utf-8"), "user_data.password_list"))
    for password in context.settings.default_password_list:
        candidates.append((password.encode("utf-8"), "default_password_list"))
    return candidates


def unpack_zip(context: FileContext, budget: Budget, extraction: Extraction) -> None:
    archive_size = context.size
    with pyzipper.AESZipFile(context.path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            extraction.members += 1
            claim_child(budget, context, info.filename)
            # zipfile reads at most compress_size bytes, and never more than the file has.
            packed = min(info.compress_size, archive_size)
            encrypted = bool(info.flag_bits & 0x1)
            candidates = password_candidates(context) if encrypted else [(b"", "")]
            for number, (password, source) in enumerate(candidates):
                try:
                    with archive.open(info, pwd=password or None) as member:
                        copy_member(
                            ChildWriter(context, budget, extraction, info.filename, packed), member.read
                        )
                except LimitReached as limit:
                    if limit.limit != "ratio":
                        raise
                    # One over-expanding member is skipped; the others still count.
                    extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
                    break
                except (RuntimeError, *BAD_ZIP, zlib.error, ValueError, EOFError) as error:
                    if encrypted and number + 1 < len(candidates):
                        continue  # wrong password: try the next one
                    reason = "no password matched" if encrypted else f"{type(error).__name__}: {error}"
                    extraction.skipped.append({"file_path": display_name(info.filename), "reason": reason})
                    break
                except NotImplementedError as error:
                    extraction.skipped.append(
                        {"file_path": display_name(info.filename), "reason": f"unsupported: {error}"}
                    )
                    break
                if encrypted:
                    extraction.password_source = source
                break


def unpack_tar(context: FileContext, budget: Budget, extraction: Extraction) -> None:
    with tarfile.open(context.path, mode="r:") as archive:
        for member in archive:
            if member.isdir():
                continue
            extraction.members += 1
            if not member.isreg():
                # Links and devices are reported, never followed or created.
                kind = "link" if member.issym() or member.islnk() else "special file"
                extraction.skipped.append({"file_path": display_name(member.name), "reason": kind})
                continue
            claim_child(budget, context, member.name)
            source = archive.extractfile(member)
            if source is None:
                continue
            # A tar stores members as they are; only sparse members expand, bounded by the archive.
            writer = ChildWriter(context, budget, extraction, member.name, context.size)
            try:
                copy_member(writer, source.read)
            except LimitReached as limit:
                if limit.limit != "ratio":
                    raise
                extraction.limits.append({"limit": limit.limit, "detail": limit.detail})


def stream_child_name(context: FileContext, archive_format_name: str) -> str:
    name = PurePosixPath(context.file_name or "data")
    replacement = STREAM_SUFFIXES[archive_format_name].get(name.suffix.lower())
    if replacement is None:
        return f"{name.name}.decompressed"
    return name.stem + replacement if not name.stem.endswith(replacement) else name.stem


def unpack_stream(context: FileContext, budget: Budget, extraction: Extraction, kind: str) -> None:
    name = stream_child_name(context, kind)
    extraction.members = 1
    claim_child(budget, context, name)
    writer = ChildWriter(context, budget, extraction, name, context.size)
    with STREAM_OPENERS[kind](str(context.path), "rb") as source:
        try:
            while block := source.read(BLOCK):
                writer.write(block)
        except LimitReached:
            writer.drop()
            raise
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
            # A truncated stream still yields what came before the damage.
            extraction.errors.append(f"{kind} stream damaged after {writer.written} bytes: {error}")
        writer.keep()


class SevenZipWriter(py7zr.io.Py7zIO):
    """A py7zr output that is a ChildWriter: limits apply as py7zr decompresses."""

    def __init__(self, writer: ChildWriter):
        self.writer = writer

    def write(self, data: bytes | bytearray) -> int:
        self.writer.write(bytes(data))
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


class SevenZipFactory(py7zr.io.WriterFactory):
    def __init__(self, context: FileContext, budget: Budget, extraction: Extraction):
        self.context, self.budget, self.extraction = context, budget, extraction
        self.writers: list[ChildWriter] = []

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        # py7zr hands over its sanitized output path; report the name inside the archive.
        with contextlib.suppress(ValueError):
            filename = os.path.relpath(filename, os.getcwd())
        self.extraction.members += 1
        claim_child(self.budget, self.context, filename)
        writer = ChildWriter(self.context, self.budget, self.extraction, filename, self.context.size)
        self.writers.append(writer)
        return SevenZipWriter(writer)

    def drop_unfinished(self) -> None:
        for writer in self.writers:
            if not writer.handle.closed:
                writer.drop()


def unpack_7z(context: FileContext, budget: Budget, extraction: Extraction) -> None:
    try:
        with py7zr.SevenZipFile(context.path) as probe:
            encrypted = probe.needs_password()
    except py7zr.exceptions.PasswordRequired:
        encrypted = True  # even the file names are encrypted (7z -mhe=on)
    candidates = password_candidates(context) if encrypted else [(b"", "")]
    for number, (password, source) in enumerate(candidates):
        factory = SevenZipFactory(context, budget, extraction)
        kept_before = len(extraction.children)
        try:
            with py7zr.SevenZipFile(
                context.path, password=password.decode() if encrypted else None
            ) as archive:
                archive.extractall(factory=factory)
        except LimitReached:
            factory.drop_unfinished()
            raise
        except (
            py7zr.exceptions.ArchiveError,
            py7zr.exceptions.PasswordRequired,
            lzma.LZMAError,
            ValueError,
            OSError,
        ) as error:
            factory.drop_unfinished()
            if encrypted and number + 1 < len(candidates):
                for child in extraction.children[kept_before:]:
                    child.path.unlink(missing_ok=True)
                del extraction.children[kept_before:]
                extraction.members = 0
                continue
            extraction.errors.append(f"7z: {type(error).__name__}: {error}")
            return
        if encrypted:
            extraction.password_source = source
        return


UNPACKERS: dict[str, Callable[[FileContext, Budget, Extraction], None]] = {
    "zip": unpack_zip,
    "tar": unpack_tar,
    "gzip": lambda context, budget, extraction: unpack_stream(context, budget, extraction, "gzip"),
    "bzip2": lambda context, budget, extraction: unpack_stream(context, budget, extraction, "bzip2"),
    "xz": lambda context, budget, extraction: unpack_stream(context, budget, extraction, "xz"),
    "7z": unpack_7z,
}


def unpack(context: FileContext, budget: Budget) -> Extraction | None:
    """Extract the children of an archive; None when the file is not one we unpack."""
    kind = archive_format(context)
    if kind is None:
        return None
    extraction = Extraction(kind)
    if context.depth >= context.settings.unpack_max_depth:
        limit = context.settings.unpack_max_depth
        detail = f"not unpacked: nested {context.depth} levels deep (limit {limit})"
        extraction.limits.append({"limit": "depth", "detail": detail})
        return extraction
    try:
        UNPACKERS[kind](context, budget, extraction)
    except LimitReached as limit:
        extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        py7zr.exceptions.ArchiveError,
        py7zr.exceptions.PasswordRequired,
        EOFError,
        OSError,
        ValueError,
    ) as error:
        extraction.errors.append(f"{kind}: {type(error).__name__}: {error}")
    return extraction


def findings(extraction: Extraction) -> dict[str, Any]:
    """The archive's own report: what it held, what was skipped, which limits were hit."""
    archive: dict[str, Any] = {
        "format": extraction.archive_format,
        "members": extraction.members,
        "extracted": len(extraction.children),
        "skipped": extraction.skipped[:100],
        "limits_hit": extraction.limits,
    }
    if extraction.password_source:
        archive["password_source"] = extraction.password_source
    result: dict[str, Any] = {"metadata": {"archive": archive}, "indicators": [], "story": []}
    for limit in extraction.limits:
        result["indicators"].append(
            indicator(
                f"unpack:limit:{limit['limit']}",
                "unpacking",
                f"Unpacking stopped by the {limit['limit']} limit",
                6,
                [limit["detail"]],
            )
        )
        result["story"].append(f"Unpacking stopped at the {limit['limit']} limit: {limit['detail']}.")
    if extraction.limits:
        result["tags"] = ["unpack-limit"]
    if extraction.password_source:
        result["tags"] = [*result.get("tags", []), "encrypted-archive"]
    if extraction.errors:
        result["errors"] = extraction.errors
    return result
