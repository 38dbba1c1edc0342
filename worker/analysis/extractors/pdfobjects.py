"""PDF extractor (pypdf): embedded files and attachments, and files hidden in other streams, as children.

Every object of the file is visited once (up to MAX_OBJECTS), objects inside object streams
included: a file specification (any dictionary with `/EF`, from the `/EmbeddedFiles` name
tree or a `/FileAttachment` annotation alike) names the streams it holds, and a stream of
`/Type /EmbeddedFile` is an embedded file even when nothing names it. Embedded files are
decoded whole into children; any other stream is decoded only as far as its first bytes,
and becomes a child when they start a file that hides a payload (an executable, an archive,
a document; see `signatures.py`).

pypdf was chosen over pikepdf (qpdf): both parse the same files, pikepdf four times faster
(20,000 objects: 0.14 s against 0.58 s), but pypdf is pure Python, so a hostile file can
make it raise, never crash the worker process, and the task's time limit can interrupt it
anywhere. pypdf reads the file whole, so files above MAX_PDF_BYTES are refused. Stream data
is decoded here rather than by pypdf: FlateDecode block by block into the child writer, so
a compressed bomb stops at the ratio or total-bytes limit after at most one block.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pypdf
from pypdf import filters
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, StreamObject

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors.signatures import SNIFF_BYTES, file_kind

MAX_PDF_BYTES = 128 * 1024**2
MAX_OBJECTS = 100_000
MAX_FILTERS = 8
# What a filter that needs its whole input (ASCIIHex, ASCII85, LZW, RunLength) may be given.
MAX_WHOLE_FILTER_INPUT = 64 * 1024**2
# How deep a file specification may sit in an object's direct dictionaries and arrays.
MAX_NESTING = 16
INFLATE_INPUT_BLOCK = 64 * 1024
OUTPUT_BLOCK = 1024 * 1024
FLATE = ("/FlateDecode", "/Fl")
WHOLE_FILTERS: dict[str, Callable[..., bytes]] = {
    "/ASCIIHexDecode": filters.ASCIIHexDecode.decode,
    "/AHx": filters.ASCIIHexDecode.decode,
    "/ASCII85Decode": filters.ASCII85Decode.decode,
    "/A85": filters.ASCII85Decode.decode,
    "/LZWDecode": filters.LZWDecode.decode,
    "/LZW": filters.LZWDecode.decode,
    "/RunLengthDecode": filters.RunLengthDecode.decode,
    "/RL": filters.RunLengthDecode.decode,
}
EMBEDDED_FILE_KEYS = ("/UF", "/F", "/DOS", "/Unix", "/Mac")

logging.getLogger("pypdf").setLevel(logging.CRITICAL)


class UndecodableStream(Exception):
    """A stream whose filters this extractor does not decode, or may not decode whole."""


def opens(context: FileContext) -> bool:
    """Whether this extractor will look inside the PDF of `context` (the pdf analyzer asks)."""
    return context.size <= MAX_PDF_BYTES and context.depth < context.settings.unpack_max_depth


def as_list(value: Any) -> list[Any]:
    value = value.get_object() if isinstance(value, IndirectObject) else value
    if value is None:
        return []
    return list(value) if isinstance(value, ArrayObject) else [value]


def filter_chain(stream: StreamObject) -> list[tuple[str, Any]]:
    names = [str(name.get_object()) for name in as_list(stream.get("/Filter"))]
    given = as_list(stream.get("/DecodeParms"))
    parameters = [
        (given[n].get_object() if n < len(given) and given[n] is not None else None)
        for n in range(len(names))
    ]
    return list(zip(names, parameters, strict=True))


def inflate(source: Iterable[bytes], output_block: int) -> Iterator[bytes]:
    """zlib-decode, yielding at most `output_block` bytes at a time; a damaged tail ends the stream.

    Input goes in small pieces so zlib's unconsumed tail (a copy) stays small.
    """
    decompressor = zlib.decompressobj()
    try:
        for block in source:
            view = memoryview(block)
            for start in range(0, len(view), INFLATE_INPUT_BLOCK):
                pending: bytes | memoryview = view[start : start + INFLATE_INPUT_BLOCK]
                while pending:
                    out = decompressor.decompress(pending, output_block)
                    if out:
                        yield out
                    if decompressor.eof:
                        return
                    pending = decompressor.unconsumed_tail
        while out := decompressor.decompress(b"", output_block):
            yield out
    except zlib.error:
        return  # readers show what decodes before the damage; so does this


def whole(decode: Callable[..., bytes], source: Iterable[bytes], parameters: Any) -> Iterator[bytes]:
    collected = bytearray()
    for block in source:
        collected += block
        if len(collected) > MAX_WHOLE_FILTER_INPUT:
            raise UndecodableStream(f"more than {MAX_WHOLE_FILTER_INPUT} bytes for a filter decoded whole")
    yield decode(bytes(collected), parameters)


def decoded(stream: StreamObject, output_block: int = OUTPUT_BLOCK) -> Iterator[bytes]:
    """The stream's data with its filters undone, block by block."""
    chain = filter_chain(stream)
    if len(chain) > MAX_FILTERS:
        raise UndecodableStream(f"{len(chain)} filters")
    source: Iterable[bytes] = [stream._data]
    for name, parameters in chain:
        predictor = parameters.get("/Predictor", 1) if isinstance(parameters, DictionaryObject) else 1
        if name in FLATE and predictor in (1, None):
            source = inflate(source, output_block)
        elif name in WHOLE_FILTERS:
            source = whole(WHOLE_FILTERS[name], source, parameters)
        else:
            raise UndecodableStream(
                f"filter {name}" + (f" with predictor {predictor}" if name in FLATE else "")
            )
    return iter(source)


def first_bytes(stream: StreamObject, size: int) -> bytes:
    head = bytearray()
    blocks = decoded(stream, size)
    try:
        for block in blocks:
            head += block
            if len(head) >= size:
                break
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    return bytes(head[:size])


def text(value: Any) -> str:
    value = value.get_object() if isinstance(value, IndirectObject) else value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value) if value is not None else ""


def find_file_specs(value: Any, names: dict[int, str], depth: int = 0) -> None:
    """Map each embedded-file stream named by a file specification in `value` to the file's name.

    Walks direct dictionaries and arrays only: indirect objects are visited on their own.
    """
    if depth > MAX_NESTING:
        return
    if isinstance(value, DictionaryObject):
        files = value.get("/EF")
        files = files.get_object() if isinstance(files, IndirectObject) else files
        if isinstance(files, DictionaryObject):
            name = text(value.get("/UF")) or text(value.get("/F"))
            for key in EMBEDDED_FILE_KEYS:
                reference = files.get(key)
                if isinstance(reference, IndirectObject):
                    names.setdefault(reference.idnum, name)
        for item in value.values():
            if not isinstance(item, IndirectObject):
                find_file_specs(item, names, depth + 1)
    elif isinstance(value, ArrayObject):
        for item in value:
            if not isinstance(item, IndirectObject):
                find_file_specs(item, names, depth + 1)


def object_numbers(reader: pypdf.PdfReader) -> list[tuple[int, int]]:
    numbers = {(number, generation) for generation, table in reader.xref.items() for number in table}
    numbers |= {(number, 0) for number in reader.xref_objStm}
    return sorted(numbers)


def unlock(context: FileContext, reader: pypdf.PdfReader) -> str | None:
    """Decrypt with the empty user password or one from the list; the password's source, or None."""
    for password, source in [(b"", "empty user password"), *context.passwords()]:
        if reader.decrypt(password) != pypdf.PasswordType.NOT_DECRYPTED:
            return source
    return None


def unreadable(context: FileContext, reason: str) -> Findings:
    """A PDF pypdf cannot open: the error, and the pdf analyzer's name count stands for embedded files."""
    from worker.analysis import pdf  # the pdf analyzer imports this module

    findings: Findings = {"errors": [f"PDF not readable: {reason}"]}
    with context.path.open("rb") as handle:
        counts = pdf.count_names(handle.read(pdf.SCAN_BYTES))
    if counts["embedded_files"] + counts["file_attachments"] + counts["embedded_file_specs"]:
        findings["heuristics"] = [hit("pdf:embedded-file", "named in a PDF that could not be parsed")]
    return findings


def extract(context: FileContext) -> Findings:
    if context.size > MAX_PDF_BYTES:
        return {"errors": [f"PDF larger than {MAX_PDF_BYTES} bytes: embedded files not extracted"]}
    try:
        reader = pypdf.PdfReader(str(context.path), strict=False)
    except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError) as error:
        return unreadable(context, f"{type(error).__name__}: {error}")
    hits: list[HeuristicHit] = []
    if reader.is_encrypted:
        source = unlock(context, reader)
        if source is None:
            context.skip(context.file_name or "PDF", "no password matched")
            return {
                "heuristics": [hit("archive:password-unknown", context.file_name)],
                "story": ["The PDF is encrypted with an unknown user password."],
            }
        if source != "empty user password":
            context.extraction.password_source = source
            hits.append(hit("archive:encrypted", source))
    errors: list[str] = []
    names: dict[int, str] = {}
    streams: list[tuple[int, StreamObject]] = []
    numbers = object_numbers(reader)
    if len(numbers) > MAX_OBJECTS:
        errors.append(f"{len(numbers)} objects: only the first {MAX_OBJECTS} were visited")
    for number, generation in numbers[:MAX_OBJECTS]:
        context.check_time("reading PDF objects")
        try:
            value = reader.get_object(IndirectObject(number, generation, reader))
        except Exception:  # one damaged object is no reason to stop reading the others
            continue
        if isinstance(value, StreamObject):
            streams.append((number, value))
        find_file_specs(value, names)
    embedded: list[str] = []
    hidden: list[str] = []
    for number, stream in streams:
        context.check_time("decoding PDF streams")
        context.extraction.members += 1
        is_embedded = number in names or stream.get("/Type") == NameObject("/EmbeddedFile")
        name = names.get(number) or f"{'embedded' if is_embedded else 'stream'}-{number}"
        try:
            if is_embedded:
                embedded.append(name)
            else:
                kind = file_kind(first_bytes(stream, SNIFF_BYTES))
                if kind is None:
                    continue
                name = f"{name}.{kind.lower()}"
                hidden.append(name)
            context.extract(name, decoded(stream), len(stream._data), "embedded")
        except (UndecodableStream, ValueError, pypdf.errors.PyPdfError) as error:
            if is_embedded:
                context.skip(name, f"not decoded: {error}")
    if embedded:
        hits.append(hit("pdf:embedded-file", *embedded[:5]))
    if hidden:
        hits.append(hit("document:hidden-file", *hidden[:5]))
    findings: Findings = {
        "errors": errors,
        "heuristics": hits,
        "metadata": {"document": {"pdf": {"embedded_files": len(embedded), "hidden_files": len(hidden)}}},
    }
    if embedded or hidden:
        findings["story"] = [
            f"It carries {len(embedded)} embedded file(s) and {len(hidden)} file(s) hidden in other streams."
        ]
    return findings


ANALYZER = Analyzer(name="pdf-files", version="1", run=extract, accepts=("Document/PDF",), extracts=True)
