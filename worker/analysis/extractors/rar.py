"""RAR extractor (refinery's pure-Python unrar): RAR 1.5 to 5, solid or not, encrypted with the password list.

binary-refinery rather than rarfile because rarfile needs an external unrar, 7z or bsdtar for
every compressed member; refinery decodes all RAR versions and their encryption in Python
(with optional Cython speed-ups). It parses the whole header chain before the first member
and returns each member as one buffer, so the chain is cut after as many members as the
task may still unpack, and a member is decoded only when its declared size passes the limits.
"""

from __future__ import annotations

from collections.abc import Iterator

from refinery.lib.unrar import (
    RarException,
    RarFile,
    RarInvalidChecksum,
    RarInvalidPassword,
    RarMissingPassword,
)
from refinery.lib.unrar.headers import FileSystemRedirect, RarFileEntry

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, LimitReached, hit
from worker.analysis.extractors.inmemory import admit, mapped

RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"
RAR4_SIGNATURE = b"Rar!\x1a\x07\x00"
RAR5_FILE, RAR5_CRYPT, RAR5_END = 2, 4, 5
RAR4_FILE, RAR4_END = 0x74, 0x7B
WRONG_PASSWORD = (RarInvalidPassword, RarMissingPassword, RarInvalidChecksum)


def vint(view: memoryview, pos: int) -> tuple[int, int]:
    """A RAR 5 variable-length integer at `pos`: its value and the position after it."""
    value = shift = 0
    while pos < len(view) and shift < 64:
        byte = view[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    raise ValueError("truncated RAR 5 header")


def rar5_file_headers(view: memoryview) -> Iterator[int] | None:
    """Offsets of the headers of files (not directories) in a RAR 5 archive; None if they are encrypted."""
    pos = len(RAR5_SIGNATURE)
    offsets: list[int] = []
    while pos + 7 <= len(view):
        size, start = vint(view, pos + 4)
        header_type, cursor = vint(view, start)
        flags, cursor = vint(view, cursor)
        if flags & 0x1:
            _, cursor = vint(view, cursor)
        data_size = 0
        if flags & 0x2:
            data_size, cursor = vint(view, cursor)
        if header_type == RAR5_CRYPT:
            return None
        if header_type == RAR5_FILE and not vint(view, cursor)[0] & 0x1:
            offsets.append(pos)
        if header_type == RAR5_END or size == 0:
            break
        pos = start + size + data_size
    return iter(offsets)


def rar4_file_headers(view: memoryview) -> Iterator[int]:
    pos = len(RAR4_SIGNATURE)
    while pos + 7 <= len(view):
        header_type = view[pos + 2]
        flags = int.from_bytes(view[pos + 3 : pos + 5], "little")
        size = int.from_bytes(view[pos + 5 : pos + 7], "little")
        added = int.from_bytes(view[pos + 7 : pos + 11], "little") if flags & 0x8000 else 0
        if header_type == RAR4_FILE:
            if flags & 0x100:  # a large file: the high 32 bits of its packed size
                added |= int.from_bytes(view[pos + 32 : pos + 36], "little") << 32
            if flags & 0xE0 != 0xE0:
                yield pos
        if header_type == RAR4_END or size < 7:
            break
        pos += size + added


def cut_after_budget(view: memoryview, room: int) -> tuple[memoryview, bool]:
    """The archive cut before its (room + 2)th file, so no more headers are parsed than can be used.

    One file past the room is kept so that the children limit is met, and recorded, as usual.
    """
    scan = rar5_file_headers(view) if view[:8] == RAR5_SIGNATURE else rar4_file_headers(view)
    if scan is None:
        return view, False
    try:
        for number, offset in enumerate(scan):
            if number > room:
                return view[:offset], True
    except ValueError:
        pass  # a damaged chain: refinery reports it
    return view, False


def open_archive(view: memoryview, context: FileContext) -> tuple[RarFile | None, str]:
    """The archive, opened with the password its encrypted headers need (if any) and its source."""
    archive = RarFile(view)
    if getattr(archive, "_crypt_header", None) is None or archive.entries:
        return archive, ""
    for password, source in context.passwords():
        try:
            archive = RarFile(view, password=password.decode("utf-8", "replace"))
        except RarInvalidPassword:
            continue
        if archive.entries:
            return archive, source
    return None, ""


def read_member(
    archive: RarFile, entry: RarFileEntry, passwords: list[tuple[str, str]]
) -> tuple[bytes | memoryview, str, str]:
    """The member's data, the source of the password that opened it, and any integrity error."""
    if not entry.is_encrypted:
        try:
            return archive.read(entry), "", ""
        except RarInvalidChecksum as damaged:
            return damaged.data, "", str(damaged)
    for password, source in passwords:
        try:
            return archive.read(entry, password), source, ""
        except WRONG_PASSWORD:
            continue
    raise RarMissingPassword(entry.name)


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    locked: list[str] = []
    sources: set[str] = set()
    with mapped(context.path) as whole:
        room = context.budget.children_left if context.budget else context.settings.unpack_max_children
        view, cut = cut_after_budget(whole, room)
        archive, header_source = open_archive(view, context)
        if archive is None:
            context.skip(context.file_name or "rar", "no password matched")
            return {
                "heuristics": [hit("archive:password-unknown", context.file_name)],
                "story": ["The RAR archive's file list is encrypted with an unknown password."],
            }
        if header_source:
            sources.add(header_source)
        passwords = [(p.decode("utf-8", "replace"), s) for p, s in context.passwords()]
        for entry in archive.entries:
            if entry.is_dir:
                continue
            context.extraction.members += 1
            if entry.redir_type != FileSystemRedirect.FSREDIR_NONE:
                context.skip(entry.name, "link")
                continue
            packed = min(entry.packed_size, context.size)
            if entry.size is None or not admit(context, entry.name, entry.size, packed):
                if entry.size is None:
                    context.skip(entry.name, "unpacked size unknown")
                continue
            try:
                data, source, damage = read_member(archive, entry, passwords)
            except RarMissingPassword:
                context.skip(entry.name, "no password matched")
                locked.append(entry.name)
                continue
            except (RarException, ValueError, EOFError) as error:
                context.skip(entry.name, f"{type(error).__name__}: {error}")
                errors.append(f"rar: {entry.name}: {error}")
                continue
            if source:
                sources.add(source)
                # The password that opened this member most likely opens the next ones.
                passwords.sort(key=lambda candidate: candidate[1] != source)
            if damage:
                errors.append(f"rar: {entry.name}: {damage}")
            context.extract(entry.name, data, packed)
        if cut:
            limit = context.settings.unpack_max_children
            raise LimitReached("children", f"more than {limit} files unpacked in this task")
    return findings(context, sources, locked, errors)


def findings(context: FileContext, sources: set[str], locked: list[str], errors: list[str]) -> Findings:
    hits: list[HeuristicHit] = []
    result: Findings = {}
    if sources:
        context.extraction.password_source = sorted(sources)[0]
        hits.append(hit("archive:encrypted", *sorted(sources)))
    if locked:
        hits.append(hit("archive:password-unknown", *locked[:5]))
        result["story"] = [
            f"{len(locked)} encrypted RAR member(s) could not be opened with any known password."
        ]
    if hits:
        result["heuristics"] = hits
    if errors:
        result["errors"] = errors
    return result


ANALYZER = Analyzer(name="rar", version="1", run=extract, accepts=("Archive/RAR",), extracts=True)
