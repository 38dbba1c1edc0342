"""RTF extractor (oletools.rtfobj): `\\objdata` objects, the files of OLE1 Packages, files hidden in `\\pict`.

Each `\\objdata` group is an OLE1 object: a Package yields the file it carries, under its
own name; any other class yields its native data (often a compound file, then opened by
the OLE extractor); data that is no OLE1 object at all is given as it is. A `\\pict` group
is a picture, but droppers hide executables and archives there: a picture whose bytes start
with such a file's signature is a child too.

rtfobj parses the whole document in memory, so documents above `office_max_bytes` are refused.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Callable
from typing import Any

from oletools import rtfobj

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors.signatures import SNIFF_BYTES, file_kind

MAX_OBJECTS = 1000
KEPT_DESTINATIONS = (b"objdata", b"pict")
CHECK_EVERY = 4096
NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")

logging.getLogger("rtfobj").setLevel(logging.CRITICAL)


class RtfParser(rtfobj.RtfObjParser):
    """rtfobj's object parser, also keeping pictures whose bytes are a file rather than an image.

    rtfobj keeps the text of every group as bytes grown by concatenation, which costs time
    quadratic in a group's size (38 s for a 10 MB document of plain text). Here only the
    groups read afterwards (`\\objdata`, `\\pict`) keep their data, as hex digits in a
    bytearray; and the parse checks the file's deadline as it goes.
    """

    def __init__(self, data: bytes, check_time: Callable[[str], None]):
        super().__init__(data)
        self.check_time = check_time
        self.events = 0
        self.hidden: list[tuple[str, bytes]] = []
        self.pictures = 0

    def tick(self) -> None:
        self.events += 1
        if self.events % CHECK_EVERY == 0:
            self.check_time("parsing RTF")

    def open_group(self) -> None:
        self.tick()

    def control_word(self, matchobject: Any, cword: bytes, param: Any) -> None:
        self.tick()

    def open_destination(self, destination: Any) -> None:
        if destination.cword in KEPT_DESTINATIONS:
            destination.data = bytearray()

    def _text(self, matchobject: Any) -> None:
        self.tick()
        destination = self.current_destination
        if destination.cword in KEPT_DESTINATIONS:
            destination.data += NOT_HEX.sub(b"", matchobject.group())

    def control_symbol(self, matchobject: Any) -> None:
        self.tick()
        if matchobject.group()[1:2] != b"'":
            return
        # \'hh: its two characters are skipped; in objdata, Word drops a pending odd hex digit.
        self.index += 2
        destination = self.current_destination
        if destination.cword == b"objdata" and len(destination.data) % 2:
            del destination.data[-1]

    def bin(self, bindata: bytes) -> None:
        if self.current_destination.cword in KEPT_DESTINATIONS:
            self.current_destination.data += binascii.hexlify(bindata)

    def close_destination(self, destination: Any) -> None:
        super().close_destination(destination)
        if destination.cword != b"pict":
            return
        self.pictures += 1
        digits = destination.data
        kind = file_kind(binascii.unhexlify(digits[: 2 * SNIFF_BYTES]))
        if kind is not None and len(self.hidden) < MAX_OBJECTS:
            whole = binascii.unhexlify(digits[: len(digits) & ~1])
            self.hidden.append((f"pict-{self.pictures}.{kind.lower()}", whole))


def object_name(number: int, item: Any) -> str:
    if item.is_package:
        for name in (item.filename, item.src_path, item.temp_path):
            if name and isinstance(name, str):
                return str(name)
    if item.is_ole and item.class_name:
        class_name = item.class_name.rstrip(b"\0").decode("latin-1")
        return f"objdata-{number}-{class_name}"
    return f"objdata-{number}"


def object_data(item: Any) -> bytes:
    if item.is_package and item.olepkgdata is not None:
        return bytes(item.olepkgdata)
    if item.is_ole and item.oledata is not None:
        return bytes(item.oledata)
    return bytes(item.rawdata or b"")


def extract(context: FileContext) -> Findings:
    limit = context.settings.office_max_bytes
    if context.size > limit:
        return {"errors": [f"RTF document larger than {limit} bytes: objects not extracted"]}
    parser = RtfParser(context.path.read_bytes(), context.check_time)
    parser.parse()
    errors: list[str] = []
    names: list[str] = []
    for number, item in enumerate(parser.objects, start=1):
        if number > MAX_OBJECTS:
            errors.append(f"stopped after {MAX_OBJECTS} objects")
            break
        context.extraction.members += 1
        data = object_data(item)
        if not data:
            context.skip(f"objdata-{number}", "empty or linked object")
            continue
        name = object_name(number, item)
        if not item.is_ole:
            errors.append(f"{name}: not an OLE1 object; its data is given as it is")
        context.extract(name, data, len(item.hexdata or data) // 2 or len(data), "embedded")
        names.append(name)
    for name, data in parser.hidden:
        context.extraction.members += 1
        context.extract(name, data, len(data), "embedded")
        names.append(name)
    findings: Findings = {"errors": errors}
    if names:
        hits: list[HeuristicHit] = [hit("office:embedded-object", *names[:5])]
        findings["heuristics"] = hits
        findings["story"] = [f"It carries {len(names)} embedded object(s)."]
    return findings


ANALYZER = Analyzer(name="rtf", version="1", run=extract, accepts=("Document/RTF",), extracts=True)
