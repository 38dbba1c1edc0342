"""Embedded-blob extractor: base64 and hex runs and `data:` URIs inside text, scripts and HTML, decoded.

Scripts and pages carry payloads as long base64 strings (`-EncodedCommand`, `atob("...")`,
`FromBase64String`), hex strings or byte lists (`0x4d,0x5a,...`, `\\x4d\\x5a...`), and
HTML as `data:` URIs. Runs are looked for by regular expression over the first
`SCAN_BYTES` of the file. A decoded run becomes a child only when it is at least
`MIN_DECODED_BYTES` and looks like a file rather than text, or is large (`LARGE_BYTES`);
`data:` URIs are files by declaration and need only `MIN_DATA_URI_BYTES`. At most
`MAX_BLOBS` children per file; a blob that decodes to more encoded text is bounded by
the engine's depth limit, since each level is a child of the one before.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from worker.analysis.context import Analyzer, FileContext, Findings

SCAN_BYTES = 8 * 1024**2
MIN_DECODED_BYTES = 256
MIN_DATA_URI_BYTES = 64
LARGE_BYTES = 64 * 1024
MAX_BLOBS = 32
# Text whose characters are this share of printable or whitespace is text, not a file.
TEXT_SHARE = 0.95
NOT_SCANNED = ("Text/UUE", "Text/BinHex")

BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
B64 = rb"[A-Za-z0-9+/]"
# A run starts where no base64 character precedes it, so that a run too short to match costs
# one step per character, not one per character squared. It may be wrapped over lines of at
# least `MIN_LINE` characters (a list of short words is not base64); its length is checked
# after the match.
MIN_LINE = 16
BASE64_RUN = re.compile(rb"(?<!%s)%s{%d,}(?:\r?\n%s{%d,})*={0,2}" % (B64, B64, MIN_LINE, B64, MIN_LINE))
MIN_RUN_CHARS = MIN_DECODED_BYTES * 4 // 3
HEX_LIST = re.compile(
    rb"(?<![0-9A-Za-z])(?:0x[0-9a-fA-F]{2}\s*,\s*){%d,}0x[0-9a-fA-F]{2}" % (MIN_DECODED_BYTES - 1)
)
HEX_ESCAPED = re.compile(rb"(?:\\x[0-9a-fA-F]{2}){%d,}" % MIN_DECODED_BYTES)
HEX_DIGITS = re.compile(rb"[0-9a-fA-F]+")
DATA_URI = re.compile(
    rb"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,\"'`\s]*)*)(?P<b64>;base64)?,"
    rb"(?P<data>[^\"'`\s]+(?:\r?\n[ \t]*[A-Za-z0-9+/=]+)*)",
    re.IGNORECASE,
)
WHITESPACE = re.compile(rb"\s+")
HEX_SEPARATORS = re.compile(rb"0x|\\x|[\s,]")
MIME_SUFFIX = {
    "text/html": ".html",
    "text/javascript": ".js",
    "application/javascript": ".js",
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/x-msdownload": ".exe",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
    "text/plain": ".txt",
}


# Every base64 character maps to "B", everything else to a space: a run long enough to be
# a blob is then one substring search, which C does at memory speed, where the regular
# expressions that decode blobs cost about 0.5 s per 8 MiB of prose.
RUN_MARK = bytes(ord("B") if chr(byte) in BASE64_ALPHABET else ord(" ") for byte in range(256))
LONG_RUN = b"B" * MIN_LINE * 2


def may_hold_blobs(context: FileContext) -> bool:
    """A cheap look for what every blob needs (a long base64 or hex run, a hex byte list, a
    `data:` URI), so that only texts that may hold one are scanned in full."""
    pair = f"{context.identity.get('file_type')}/{context.identity.get('file_subtype')}"
    if pair in NOT_SCANNED or context.size < MIN_DATA_URI_BYTES:
        return False
    text = context.read_head(SCAN_BYTES)
    return (
        LONG_RUN in text.translate(RUN_MARK)
        or b"data:" in text
        or b"DATA:" in text.upper()
        or text.count(b"0x") >= MIN_DECODED_BYTES
        or text.count(b"\\x") >= MIN_DECODED_BYTES
    )


def looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not just a character cut at the sample's end
            return False
        text = sample[: error.start].decode("utf-8")
    if not text:
        return True
    printable = sum(1 for char in text if char.isprintable() or char in "\r\n\t")
    return printable / len(text) >= TEXT_SHARE


def decode_base64(run: bytes) -> bytes | None:
    compact = WHITESPACE.sub(b"", run).rstrip(b"=")
    compact = compact[: len(compact) - len(compact) % 4] if len(compact) % 4 == 1 else compact
    try:
        return base64.b64decode(compact + b"=" * (-len(compact) % 4))
    except binascii.Error:
        return None


def decode_run(run: bytes) -> tuple[str, bytes] | None:
    """A base64 run decoded, or a hex run on one line; None for anything else."""
    compact = WHITESPACE.sub(b"", run)
    if len(compact) < MIN_RUN_CHARS:
        return None
    if HEX_DIGITS.fullmatch(compact):
        # Hex wrapped over lines is more often a list of hashes than a payload.
        if len(compact) % 2 or len(compact) != len(run):
            return None
        return "hex", bytes.fromhex(compact.decode())
    decoded = decode_base64(run)
    return ("base64", decoded) if decoded is not None else None


def decode_data_uri(found: re.Match[bytes]) -> bytes | None:
    payload = found.group("data")
    if found.group("b64"):
        return decode_base64(unquote_to_bytes(WHITESPACE.sub(b"", payload)))
    return unquote_to_bytes(payload)


def worth_a_child(data: bytes) -> bool:
    return len(data) >= MIN_DECODED_BYTES and (len(data) >= LARGE_BYTES or not looks_like_text(data))


def overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps one of `spans` (sorted, not overlapping each other)."""
    index = bisect.bisect_right(spans, (start, end))
    return any(left < end and start < right for left, right in spans[max(0, index - 1) : index + 1])


def candidates(text: bytes) -> Iterator[tuple[int, str, str, bytes]]:
    """(offset, kind, name suffix, decoded bytes) of every blob worth a child, in the order found."""
    uri_spans: list[tuple[int, int]] = []
    for found in DATA_URI.finditer(text):
        uri_spans.append(found.span())
        data = decode_data_uri(found)
        if data is not None and len(data) >= MIN_DATA_URI_BYTES:
            media = (found.group("type") or b"text/plain").decode().lower()
            yield found.start(), "data-uri", MIME_SUFFIX.get(media, ".bin"), data
    for pattern, kind in ((BASE64_RUN, ""), (HEX_LIST, "hex"), (HEX_ESCAPED, "hex")):
        for found in pattern.finditer(text):
            # A data: URI's payload was decoded as the URI.
            if uri_spans and overlaps(uri_spans, *found.span()):
                continue
            if kind:
                digits = HEX_SEPARATORS.sub(b"", found.group())
                decoded: tuple[str, bytes] | None = (kind, bytes.fromhex(digits.decode()))
            else:
                decoded = decode_run(found.group())
            if decoded is not None and worth_a_child(decoded[1]):
                yield found.start(), decoded[0], ".bin", decoded[1]


def extract(context: FileContext) -> Findings:
    names: list[str] = []
    findings: Findings = {}
    for offset, kind, suffix, data in candidates(context.read_head(SCAN_BYTES)):
        if len(names) >= MAX_BLOBS:
            findings["errors"] = [f"more than {MAX_BLOBS} encoded blobs: only the first {MAX_BLOBS} decoded"]
            break
        if len(data) == context.size and data == context.path.read_bytes():
            continue  # never the file again
        name = f"{kind}@{offset}{suffix}"
        context.extraction.members += 1
        context.extract(name, data, max(1, len(data)))
        names.append(name)
    if names:
        findings["metadata"] = {"encoding": {"embedded_blobs": names}}
        findings["story"] = [f"{len(names)} encoded blob(s) were decoded from the text."]
    return findings


ANALYZER = Analyzer(
    name="embedded-blobs", version="1", run=extract, accepts=("Text",), when=may_hold_blobs, extracts=True
)
