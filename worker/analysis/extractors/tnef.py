"""TNEF extractor (winmail.dat): attachments, bodies and embedded messages, read one attribute at a time.

The attribute stream (signature, then level / id / type / length / data / checksum records)
is walked here so that an attachment's data is never held in memory: its place in the file
is remembered and copied to the child once the attachment's name is known (the long name
comes after the data). The MAPI property blocks are decoded by tnefparse's `decode_mapi`,
the part of TNEF worth a library; tnefparse's own `TNEF` class is not used because it holds
the whole file and copies the rest of it for every attribute it reads.
"""

from __future__ import annotations

import codecs
import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from tnefparse import properties
from tnefparse.codepage import Codepage
from tnefparse.mapi import IMESSAGE_SIG, decode_mapi

from worker.analysis.context import Analyzer, FileContext, Findings
from worker.analysis.extractors.outlook import CompressedRTFError, decompress_rtf

SIGNATURE = 0x223E9F78
LEVEL_MESSAGE, LEVEL_ATTACHMENT = 1, 2
ATT_BODY = 0x800C
ATT_ATTACH_DATA = 0x800F
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_REND_DATA = 0x9002
ATT_MAPI_PROPS = 0x9003
ATT_ATTACHMENT = 0x9005
ATT_OEM_CODEPAGE = 0x9007
# Attributes read into memory (MAPI blocks, titles, bodies) may be no larger.
MAX_ATTRIBUTE_BYTES = 64 * 1024**2
MAX_ATTACHMENTS = 10_000
HEADER = struct.Struct("<BHHI")
COPY_BLOCK = 1024 * 1024


class TruncatedTNEF(ValueError):
    """The stream ends inside an attribute."""


@dataclass
class Attachment:
    number: int
    title: str = ""
    long_name: str = ""
    data: tuple[int, int] | None = None  # (offset, length) of attAttachData in the file
    embedded: bytes | None = None  # PR_ATTACH_DATA_OBJ: an embedded message or OLE object

    @property
    def name(self) -> str:
        return self.long_name or self.title or f"attachment-{self.number}"


@dataclass
class TNEFWalk:
    context: FileContext
    handle: IO[bytes]
    codepage: str = "cp1252"
    current: Attachment | None = None
    count: int = 0
    names: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def read(self, length: int, what: str) -> bytes:
        if length > MAX_ATTRIBUTE_BYTES:
            raise TruncatedTNEF(f"{what} of {length} bytes is over the {MAX_ATTRIBUTE_BYTES}-byte limit")
        data = self.handle.read(length)
        if len(data) < length:
            raise TruncatedTNEF(f"stream ends inside {what} ({len(data)} of {length} bytes)")
        return data

    def skip(self, length: int, what: str) -> None:
        start = self.handle.tell()
        if start + length > self.context.size:
            raise TruncatedTNEF(f"stream ends inside {what} ({self.context.size - start} of {length} bytes)")
        self.handle.seek(length, 1)

    def text(self, data: bytes) -> str:
        return data.rstrip(b"\0").decode(self.codepage, "replace").strip()

    def mapi(self, data: bytes) -> list[Any]:
        return decode_mapi(data, self.codepage)

    def attribute(self, level: int, attribute_id: int, length: int) -> None:
        if level == LEVEL_ATTACHMENT:
            if attribute_id == ATT_ATTACH_REND_DATA or self.current is None:
                self.finish_attachment()
                self.count += 1
                self.context.extraction.members = self.count
                self.current = Attachment(self.count)
            if attribute_id == ATT_ATTACH_DATA:
                self.current.data = (self.handle.tell(), length)
                self.skip(length, "attachment data")
            elif attribute_id == ATT_ATTACH_TITLE:
                self.current.title = self.text(self.read(length, "attachment title"))
            elif attribute_id == ATT_ATTACHMENT:
                self.attachment_properties(
                    self.current, self.mapi(self.read(length, "attachment properties"))
                )
            else:
                self.skip(length, "attribute")
        elif attribute_id == ATT_OEM_CODEPAGE and length >= 4:
            number = struct.unpack("<I", self.read(length, "code page")[:4])[0]
            with contextlib.suppress(LookupError):  # a code page Python has no codec for
                self.codepage = codecs.lookup(Codepage(number).codepage()).name
        elif attribute_id == ATT_BODY:
            self.emit_bytes("body.txt", self.read(length, "body"))
        elif attribute_id == ATT_MAPI_PROPS:
            self.message_properties(self.mapi(self.read(length, "message properties")))
        else:
            self.skip(length, "attribute")

    def attachment_properties(self, attachment: Attachment, attributes: list[Any]) -> None:
        for attribute in attributes:
            if attribute.name == properties.MAPI_ATTACH_LONG_FILENAME and isinstance(attribute.data, str):
                attachment.long_name = attribute.data.strip()
            elif attribute.name == properties.MAPI_ATTACH_FILENAME and isinstance(attribute.data, str):
                attachment.title = attachment.title or attribute.data.strip()
            elif attribute.name == properties.MAPI_ATTACH_DATA_OBJ and attribute.raw_data:
                attachment.embedded = b"".join(attribute.raw_data)

    def message_properties(self, attributes: list[Any]) -> None:
        for attribute in attributes:
            values = attribute.raw_data if isinstance(attribute.raw_data, list) else []
            if attribute.name == properties.MAPI_BODY and isinstance(attribute.data, str):
                self.emit_bytes("body.txt", attribute.data.encode("utf-8"))
            elif attribute.name == properties.MAPI_BODY_HTML and values:
                html = attribute.data
                self.emit_bytes("body.html", html.encode("utf-8") if isinstance(html, str) else bytes(html))
            elif attribute.name == properties.MAPI_RTF_COMPRESSED and values:
                packed = b"".join(values)
                self.context.extraction.members += 1
                try:
                    self.context.extract("body.rtf", decompress_rtf(packed), max(1, len(packed)))
                except CompressedRTFError as error:
                    self.errors.append(f"body.rtf: {error}")

    def emit_bytes(self, name: str, data: bytes) -> None:
        if data:
            self.context.extraction.members += 1
            self.context.extract(name, data, max(1, len(data)))

    def finish_attachment(self) -> None:
        attachment, self.current = self.current, None
        if attachment is None:
            return
        if attachment.number > MAX_ATTACHMENTS:
            raise TruncatedTNEF(f"more than {MAX_ATTACHMENTS} attachments")
        if attachment.data is not None:
            offset, length = attachment.data
            self.names.append(attachment.name)
            self.context.extract(attachment.name, self.copy(offset, length), max(1, length))
        elif attachment.embedded:
            embedded = attachment.embedded
            if embedded.startswith(IMESSAGE_SIG):
                # An attached message is a TNEF stream of its own: the engine reads it in turn.
                embedded = embedded[len(IMESSAGE_SIG) :]
                name = (
                    f"{attachment.name}.tnef" if attachment.name.lower() != "winmail.dat" else "winmail.dat"
                )
            else:
                name = attachment.name
            self.names.append(name)
            self.context.extract(name, embedded, max(1, len(embedded)))
        else:
            self.context.skip(attachment.name, "attachment without data")

    def copy(self, offset: int, length: int) -> Iterator[bytes]:
        position = self.handle.tell()
        try:
            self.handle.seek(offset)
            left = length
            while left > 0:
                block = self.handle.read(min(COPY_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block
        finally:
            self.handle.seek(position)


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    with context.path.open("rb") as handle:
        start = handle.read(6)
        if len(start) < 6 or struct.unpack_from("<I", start)[0] != SIGNATURE:
            return {"errors": ["not a TNEF stream: wrong signature"]}
        walk = TNEFWalk(context, handle)
        try:
            while header := handle.read(HEADER.size):
                if len(header) < HEADER.size:
                    raise TruncatedTNEF("stream ends inside an attribute header")
                level, attribute_id, _type, length = HEADER.unpack(header)
                context.check_time("reading TNEF attributes")
                walk.attribute(level, attribute_id, length)
                walk.skip(2, "attribute checksum")
            walk.finish_attachment()
        except TruncatedTNEF as error:
            errors.append(f"TNEF damaged: {error}")
            walk.finish_attachment()
        errors.extend(walk.errors)
    findings: Findings = {"metadata": {"email": {"tnef_attachments": walk.names[:100]}}}
    if errors:
        findings["errors"] = errors
    return findings


ANALYZER = Analyzer(name="tnef", version="1", run=extract, accepts=("Email/TNEF",), extracts=True)
