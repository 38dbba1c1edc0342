"""OOXML and OpenDocument packages: embedded objects and macros named as such; ODF parts extracted.

Both are ZIP packages. The ZIP extractor already extracts every part of an OOXML package
(docx, xlsx, pptx), each under its part name, so this analyzer, run after it, only labels
the parts that are embedded objects or macro projects (`word/embeddings/*`, `oleObject*.bin`,
`vbaProject.bin`...) with the relationship `embedded`. An OpenDocument package (odt, ods,
odp) is identified as a document the ZIP extractor does not take, so this extractor reads it
with the ZIP extractor's own reader, part by part under the same limits, and labels its
embedded objects (`Object N/`) and Basic macros (`Basic/`). An `oleObject*.bin` child is a
compound file, whose OLE1 Package the OLE extractor then opens.
"""

from __future__ import annotations

import re

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors import ziparchive

OOXML_SUBTYPES = ("Word", "Excel", "PowerPoint", "OOXML")
ODF_SUBTYPES = ("ODT", "ODS", "ODP", "ODF")
EMBEDDED_OBJECT = re.compile(
    r"(^|/)embeddings/|(^|/)oleObject[^/]*\.bin$|(^|/)activeX/[^/]*\.bin$|^Object [^/]+/", re.IGNORECASE
)
MACRO_PROJECT = re.compile(r"(^|/)vbaProject\.bin$|^Basic/", re.IGNORECASE)
# A Basic library's index files, present in every package that ever had a library.
ODF_BASIC_INDEXES = re.compile(r"^Basic/(script-lc|[^/]+/script-lb)\.xml$", re.IGNORECASE)


def is_zip(context: FileContext) -> bool:
    return context.head.startswith(b"PK\x03\x04")


def run(context: FileContext) -> Findings:
    findings: Findings = {}
    is_odf = context.identity.get("file_subtype") in ODF_SUBTYPES
    if is_odf and not ziparchive.ANALYZER.wants(context):
        findings = ziparchive.extract(context)
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
