"""OOXML and OpenDocument packages: embedded objects and macros named as such; ODF parts extracted.

Both are ZIP packages. The ZIP extractor already extracts every part of an OOXML package
(docx, xlsx, pptx), each under its part name, so this analyzer, run after it, only labels
the parts that are embedded objects or macro projects (`word/embeddings/*`, `oleObject*.bin`,
`vbaProject.bin`...) with the relationship `embedded`. An OpenDocument package (odt, ods,
odp) is identified as a document the ZIP extractor does not take, so this extractor reads
it, part by part under the same limits (ODF uses only stored and deflated parts), and labels
its embedded objects (`Object N/`) and Basic macros (`Basic/`). Parts that the manifest says
are encrypted with the document's password are reported skipped: ODF encryption is not
decrypted. An `oleObject*.bin` child is a compound file, whose OLE1 Package the OLE extractor
then opens.
"""

from __future__ import annotations

import html
import re
import zipfile
import zlib

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors import ziparchive

OOXML_SUBTYPES = ("Word", "Excel", "PowerPoint", "OOXML")
ODF_SUBTYPES = ("ODT", "ODS", "ODP", "ODF")
EMBEDDED_OBJECT = re.compile(
    r"(^|/)embeddings/|(^|/)oleObject[^/]*\.bin$|(^|/)activeX/[^/]*\.bin$|^Object [^/]+/", re.IGNORECASE
)
MACRO_PROJECT = re.compile(r"(^|/)vbaProject\.bin$|^Basic/", re.IGNORECASE)
MANIFEST = "META-INF/manifest.xml"
MAX_MANIFEST_BYTES = 4 * 1024**2
FILE_ENTRY = re.compile(rb"<manifest:file-entry\b.*?(?:/>|</manifest:file-entry>)", re.DOTALL)
FULL_PATH = re.compile(rb'manifest:full-path="([^"]*)"')
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    ValueError,
    EOFError,
    OSError,
)
# A Basic library's index files, present in every package that ever had a library.
ODF_BASIC_INDEXES = re.compile(r"^Basic/(script-lc|[^/]+/script-lb)\.xml$", re.IGNORECASE)


def is_zip(context: FileContext) -> bool:
    return context.head.startswith(b"PK\x03\x04")


def encrypted_parts(archive: zipfile.ZipFile) -> set[str]:
    """The parts an OpenDocument manifest says are encrypted (with the document's password)."""
    try:
        with archive.open(MANIFEST) as member:
            manifest = member.read(MAX_MANIFEST_BYTES)
    except (KeyError, *ZIP_ERRORS):
        return set()
    parts: set[str] = set()
    for entry in FILE_ENTRY.finditer(manifest):
        if b"encryption-data" in entry.group(0) and (path := FULL_PATH.search(entry.group(0))):
            parts.add(html.unescape(path.group(1).decode("utf-8", "replace")))
    return parts


def extract_odf(context: FileContext) -> Findings:
    """Every part of an OpenDocument package, one block at a time through the extraction budget."""
    with zipfile.ZipFile(context.path) as archive:
        encrypted = encrypted_parts(archive)
        for info in archive.infolist():
            if info.is_dir():
                continue
            context.extraction.members += 1
            if info.filename in encrypted:
                context.skip(info.filename, "encrypted with the document's password (not decrypted)")
                continue
            try:
                with archive.open(info) as member:
                    context.extract(info.filename, member, min(info.compress_size, context.size))
            except ZIP_ERRORS as error:
                context.skip(info.filename, f"{type(error).__name__}: {error}")
    if not encrypted:
        return {}
    return {"story": [f"{len(encrypted)} part(s) are encrypted with the document's password."]}


def run(context: FileContext) -> Findings:
    findings: Findings = {}
    is_odf = context.identity.get("file_subtype") in ODF_SUBTYPES
    if is_odf and not ziparchive.ANALYZER.wants(context):
        findings = extract_odf(context)
    objects: list[str] = []
    basic_modules: list[str] = []
    for child in context.extraction.children:
        path = child.file_path
        if EMBEDDED_OBJECT.search(path):
            child.relationship = "embedded"
            objects.append(path)
        elif MACRO_PROJECT.search(path):
            child.relationship = "embedded"
            if is_odf and not ODF_BASIC_INDEXES.search(path):
                basic_modules.append(path)
    hits: list[HeuristicHit] = list(findings.get("heuristics", []))
    story: list[str] = list(findings.get("story", []))
    if objects:
        hits.append(hit("office:embedded-object", *objects[:5]))
        story.append(f"It carries {len(objects)} embedded object part(s).")
    if basic_modules:
        # olevba reads VBA, not OpenDocument Basic: say here that the package has macros.
        hits.append(hit("office:macros", *basic_modules[:5]))
        story.append(f"It holds {len(basic_modules)} Basic macro module(s).")
    if hits:
        findings["heuristics"] = hits
    if story:
        findings["story"] = story
    return findings


ANALYZER = Analyzer(
    name="office-package",
    version="1",
    run=run,
    accepts=tuple(f"Document/{kind}" for kind in (*OOXML_SUBTYPES, *ODF_SUBTYPES)),
    when=is_zip,
    extracts=True,
)
