"""uuencode extractor: every `begin <mode> <name>` ... `end` block in a text file, decoded line by line.

Both forms of sharutils' uuencode are read: the classic one (`begin 644 name`, decoded with
binascii.a2b_uu, forgiving the trailing garbage old encoders left) and the base64 one
(`begin-base64 644 name` ... `====`). Blocks are looked for in the first `SCAN_BYTES` of
the file; a block decodes to its end wherever that is.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from typing import IO

from worker.analysis.context import Analyzer, FileContext, Findings

BEGIN = re.compile(rb"^begin(-base64)? +([0-7]{3,4}) +(\S[^\r\n]*)", re.MULTILINE)
SCAN_BYTES = 8 * 1024**2
MAX_BLOCKS = 100
MAX_LINE = 64 * 1024
FLUSH_BYTES = 256 * 1024


class DamagedBlock(ValueError):
    """A line of a block is not uuencoded data."""


def has_uuencoded_block(context: FileContext) -> bool:
    if context.is_a("Text", "UUE"):
        return True
    text = context.read_head(SCAN_BYTES)
    # A substring search first: the anchored expression costs a step at every byte.
    return b"begin" in text and BEGIN.search(text) is not None


def uu_line(line: bytes) -> bytes:
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        if not line:
            raise
        # Some encoders append garbage after the data: decode only the length the line states.
        length = (((line[0] - 32) & 63) * 4 + 5) // 3
        try:
            return binascii.a2b_uu(line[:length])
        except binascii.Error as error:
            raise DamagedBlock(str(error)) from error


def block_data(handle: IO[bytes], base64: bool, state: dict[str, object]) -> Iterator[bytes]:
    """The decoded bytes of one block, read from the line after `begin`; `state` gets how it ended."""
    pending = bytearray()
    state["ended"] = False
    while line := handle.readline(MAX_LINE):
        stripped = line.rstrip(b"\r\n")
        if (base64 and stripped == b"====") or (not base64 and stripped.strip() == b"end"):
            state["ended"] = True
            break
        if base64:
            try:
                pending += binascii.a2b_base64(stripped)
            except binascii.Error as error:
                raise DamagedBlock(str(error)) from error
        elif stripped:
            pending += uu_line(stripped)
        if len(pending) >= FLUSH_BYTES:
            yield bytes(pending)
            pending.clear()
    yield bytes(pending)


def extract(context: FileContext) -> Findings:
    errors: list[str] = []
    names: list[str] = []
    with context.path.open("rb") as handle:
        while handle.tell() < SCAN_BYTES and (line := handle.readline(MAX_LINE)):
            found = BEGIN.match(line)
            if not found:
                continue
            if len(names) >= MAX_BLOCKS:
                errors.append(f"more than {MAX_BLOCKS} uuencoded blocks: the rest were not decoded")
                break
            name = found.group(3).decode("utf-8", "replace").strip()
            base64 = found.group(1) is not None
            names.append(name)
            context.extraction.members = len(names)
            state: dict[str, object] = {}
            writer = context.child_writer(name)
            try:
                for block in block_data(handle, base64, state):
                    writer.write(block)
            except DamagedBlock as error:
                errors.append(f"{name}: uuencoded data damaged after {writer.written} bytes: {error}")
            except BaseException:
                writer.drop()
                raise
            writer.keep()
            if not state.get("ended"):
                errors.append(f"{name}: uuencoded block has no end line (truncated)")
    findings: Findings = {"metadata": {"encoding": {"uuencoded": names}}} if names else {}
    if errors:
        findings["errors"] = errors
    return findings


ANALYZER = Analyzer(
    name="uudecode",
    version="1",
    run=extract,
    accepts=("Text",),
    when=has_uuencoded_block,
    extracts=True,
)
