"""OLE2 compound file extractor (olefile, oletools): embedded objects and OLE1 packages as children.

Legacy Office documents and the `oleObject*.bin` parts of OOXML files are compound files
(MS-CFB). An embedded file sits in a `\\x01Ole10Native` stream (an OLE1 Package: a header
naming the file, then its bytes), a `Package` stream (an embedded OOXML document), a
`CONTENTS` stream (an embedded PDF and the like), or the streams of an embedded object's
storage (`ObjectPool/_*` in Word, `MBD*` in Excel and PowerPoint). A PowerPoint 97-2003 file
keeps its embedded objects as zlib-compressed compound files in records of its `PowerPoint
Document` stream; each one is decompressed through the extraction budget and becomes a child,
itself a compound file this extractor then opens. An encrypted document (an encrypted OOXML
file is a compound file too) is decrypted with the password list, the result a child.

olefile reads the sector tables and the directory into memory and each stream whole, so
files above `office_max_bytes` are refused, and so is a directory of more entries than any
real document has, before olefile builds one object per entry.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import IO

import msoffcrypto
import msoffcrypto.exceptions
import olefile
from oletools import oleobj, ppt_record_parser

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
OLE_SUBTYPES = ("Word", "Excel", "PowerPoint", "OLE")
MAX_STREAMS = 10_000
# olefile builds an object of about 730 bytes per entry: 50,000 entries cost some 37 MB.
MAX_DIRECTORY_ENTRIES = 50_000
DIRECTORY_ENTRY_BYTES = 128
NATIVE_STREAM = "\x01ole10native"
# Streams that hold a whole embedded file: an OOXML package, or an object's native contents.
WHOLE_FILE_STREAMS = ("package", "contents")
MAX_PPT_RECORDS = 100_000
PPT_DOCUMENT_STREAM = "PowerPoint Document"
EXCEL_DEFAULT_PASSWORD = b"VelvetSweatshop"
# Office writes 100,000; each password tried costs this many hash rounds.
MAX_SPIN_COUNT = 100_000

# oletools logs every oddity of a damaged file.
for _name in ("oleobj", "olefile", "ppt_record_parser", "record_base", "msoffcrypto"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class OleTooLarge(Exception):
    """The compound file's directory has more entries than any real document has."""


class BoundedOleFile(olefile.OleFileIO):
    """olefile, refusing a directory of more than MAX_DIRECTORY_ENTRIES entries."""

    def loaddirectory(self, sect: int) -> None:
        # olefile would build an object for each reachable entry; count them first.
        directory = self._open(sect, force_FAT=True)
        entries = directory.size // DIRECTORY_ENTRY_BYTES
        if entries > MAX_DIRECTORY_ENTRIES:
            raise OleTooLarge(f"directory of {entries} entries (limit {MAX_DIRECTORY_ENTRIES})")
        super().loaddirectory(sect)


def is_ole(context: FileContext) -> bool:
    return context.head.startswith(OLE_MAGIC)


def in_object_storage(path: list[str]) -> bool:
    """Whether a stream belongs to an embedded object's storage (Word's ObjectPool, Excel's MBD*)."""
    if len(path) >= 3 and path[0].lower() == "objectpool":
        return True
    return any(part.upper().startswith("MBD") for part in path[:-1])


def is_property_stream(name: str) -> bool:
    # \x01Ole, \x01CompObj, \x03ObjInfo, \x05SummaryInformation...: an object's bookkeeping.
    return bool(name) and ord(name[0]) < 0x20


def limited(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """At most `size` bytes of `stream`, one block at a time."""
    left = size
    while left > 0 and (block := stream.read(min(left, 1024 * 1024))):
        left -= len(block)
        yield block


def package_name(package: oleobj.OleNativeStream, fallback: str) -> str:
    for name in (package.filename, package.src_path, package.temp_path):
        if name and isinstance(name, str):
            return name
    return fallback


def extract_native(context: FileContext, ole: olefile.OleFileIO, path: list[str]) -> None:
    """An OLE1 `\\x01Ole10Native` stream: the Package's file under its own name, or the raw data."""
    stream_path = "/".join(path)
    size = ole.get_size(path)
    stream = ole.openstream(path)
    try:
        package = oleobj.OleNativeStream(stream)
        header_end = stream.tell()
        usable = (
            not package.is_link
            and package.actual_size is not None
            and header_end + package.actual_size <= size
        )
    except Exception:  # not an OLE1 Package (another OLE1 class), or a damaged header
        usable = False
    if usable:
        name = package_name(package, stream_path)
        context.extract(name, limited(stream, package.actual_size), package.actual_size, "embedded")
        return
    # Another OLE1 class: after the 4-byte size comes the object's native data.
    stream.seek(4)
    context.extract(stream_path, stream, size, "embedded")


def extract_ppt_objects(context: FileContext, notes: list[str]) -> int:
    """The compressed compound files in a PowerPoint 97-2003 file's records (ExOleObjStg)."""
    found = 0
    ppt = ppt_record_parser.PptFile(str(context.path))
    try:
        records = 0
        for stream in ppt.iter_streams():
            if stream.name != PPT_DOCUMENT_STREAM:
                continue
            for record in stream.iter_records():
                records += 1
                if records > MAX_PPT_RECORDS:
                    notes.append(f"PowerPoint records: stopped after {MAX_PPT_RECORDS}")
                    return found
                if not isinstance(record, ppt_record_parser.PptRecordExOleVbaActiveXAtom):
                    continue
                found += 1
                packed = record.size if record.size is not None else context.size
                name = f"{PPT_DOCUMENT_STREAM}/ExOleObjStg-{found}"
                context.extract(name, record.iter_uncompressed(), packed, "embedded")
    finally:
        ppt.close()
    return found


def decrypt(context: FileContext) -> Findings:
    """An encrypted Office document (msoffcrypto): its decrypted document as a child, if a password fits.

    Encrypted OOXML is a compound file whose `EncryptedPackage` stream is the docx/xlsx/pptx;
    an encrypted .doc, .xls or .ppt decrypts to another compound file. Excel's default
    password, which opens a workbook without asking, is tried first. msoffcrypto decrypts in
    memory what is at most this file's size; the key derivation's spin count, which the file
    states, is capped so that a file cannot make each password try cost minutes.
    """
    with context.path.open("rb") as handle:
        try:
            office = msoffcrypto.OfficeFile(handle)
            if not office.is_encrypted():
                return {}
        except Exception:  # not an Office document msoffcrypto knows: nothing to decrypt
            return {}
        info = getattr(office, "info", None)
        spin = info.get("spinValue", 0) if isinstance(info, dict) else 0
        if spin > MAX_SPIN_COUNT:
            return {"errors": [f"encrypted document not decrypted: spin count {spin} above {MAX_SPIN_COUNT}"]}
        candidates = [(EXCEL_DEFAULT_PASSWORD, "Excel's default password"), *context.passwords()]
        for password, source in candidates:
            context.check_time("trying document passwords")
            try:
                if office.format == "ooxml":
                    office.load_key(password=password.decode("utf-8", "replace"), verify_password=True)
                else:
                    office.load_key(password=password.decode("utf-8", "replace"))
                plain = io.BytesIO()
                office.decrypt(plain)
            except msoffcrypto.exceptions.InvalidKeyError:
                continue
            except Exception as error:  # an encryption msoffcrypto does not support, or damage
                return {"errors": [f"encrypted document not decrypted: {type(error).__name__}: {error}"]}
            name = "EncryptedPackage" if office.format == "ooxml" else f"decrypted.{office.format[:3]}"
            context.extract(name, plain.getbuffer(), context.size)
            context.extraction.password_source = source
            return {
                "heuristics": [hit("archive:encrypted", source)],
                "story": [f"The document is encrypted; it was decrypted with the {source}."],
            }
    context.skip(context.file_name or "document", "no password matched")
    return {
        "heuristics": [hit("archive:password-unknown", context.file_name)],
        "story": ["The document is encrypted with a password that is not in the password list."],
    }


def extract(context: FileContext) -> Findings:
    limit = context.settings.office_max_bytes
    if context.size > limit:
        return {"errors": [f"compound file larger than {limit} bytes: embedded objects not extracted"]}
    notes: list[str] = []
    try:
        ole = BoundedOleFile(str(context.path))
    except OleTooLarge as error:
        return {"errors": [f"compound file not opened: {error}"]}
    try:
        for number, path in enumerate(ole.listdir(streams=True, storages=False)):
            if number >= MAX_STREAMS:
                notes.append(f"stopped after {MAX_STREAMS} streams")
                break
            context.extraction.members += 1
            name = path[-1].lower()
            if name == NATIVE_STREAM:
                extract_native(context, ole, path)
            elif name in WHOLE_FILE_STREAMS or (in_object_storage(path) and not is_property_stream(path[-1])):
                context.extract("/".join(path), ole.openstream(path), ole.get_size(path), "embedded")
        is_ppt = ole.exists(PPT_DOCUMENT_STREAM)
    finally:
        ole.close()
    if is_ppt:
        extract_ppt_objects(context, notes)
    findings: Findings = decrypt(context)
    findings["errors"] = [*notes, *findings.get("errors", [])]
    objects = [child for child in context.extraction.children if child.relationship == "embedded"]
    if objects:
        hits: list[HeuristicHit] = [hit("office:embedded-object", *[c.file_path for c in objects][:5])]
        findings["heuristics"] = [*findings.get("heuristics", []), *hits]
        findings["story"] = [*findings.get("story", []), f"It carries {len(objects)} embedded object(s)."]
    return findings


ANALYZER = Analyzer(
    name="ole",
    version="1",
    run=extract,
    accepts=tuple(f"Document/{kind}" for kind in OLE_SUBTYPES),
    when=is_ole,
    extracts=True,
)
