"""Office documents (oletools): VBA macros present, auto-executing and suspicious keywords."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

from oletools import olevba

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit

# Not RTF: olevba refuses it (RTF holds no VBA); the RTF extractor opens its objects.
OFFICE_SUBTYPES = ("Word", "Excel", "PowerPoint", "OLE", "OOXML")
MAX_KEYWORDS = 50

# olevba logs every oddity of a damaged document at warning level.
logging.getLogger("olevba").setLevel(logging.CRITICAL)


def keywords_by_type(parser: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for kind, keyword, _description in parser.analyze_macros() or []:
        values = found.setdefault(kind, [])
        if keyword not in values and len(values) < MAX_KEYWORDS:
            values.append(str(keyword))
    return found


def too_large_to_parse(path: Path, limit: int) -> str | None:
    """Why olevba must not read this document, if it must not.

    olevba reads a document, and each OLE member of a zip-based one, whole into memory, so a
    small .docx holding a hugely compressible member would cost gigabytes. Python's zip
    reader stops at a member's declared size, so declared sizes bound what can be read.
    """
    if path.stat().st_size > limit:
        return f"document larger than {limit} bytes"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.file_size > limit:
                    return f"member {member.filename[:100]!r} expands to more than {limit} bytes"
    return None


def analyze(context: FileContext) -> Findings:
    refused = too_large_to_parse(context.path, context.settings.office_max_bytes)
    if refused:
        office = {"macros": None, "errors": [f"macro analysis skipped: {refused}"]}
        return {"metadata": {"document": {"office": office}}}
    parser = olevba.VBA_Parser(str(context.path))
    try:
        has_macros = bool(parser.detect_vba_macros())
        keywords: dict[str, list[str]] = {}
        errors: list[str] = []
        if has_macros:
            try:
                keywords = keywords_by_type(parser)
            except Exception as error:  # the project is there but its source does not parse
                errors.append(f"macro source not readable: {type(error).__name__}: {error}")
        document = {
            "format": parser.type,
            "macros": has_macros,
            "auto_exec": keywords.get("AutoExec", []),
            "suspicious_keywords": keywords.get("Suspicious", []),
            "iocs": keywords.get("IOC", [])[:MAX_KEYWORDS],
        }
    finally:
        parser.close()
    findings: Findings = {"metadata": {"document": {"office": document}}}
    if errors:
        findings["metadata"]["document"]["office"]["errors"] = errors
    if not has_macros:
        return findings
    auto_exec, suspicious = document["auto_exec"], document["suspicious_keywords"]
    hits: list[HeuristicHit] = [hit("office:macros")]
    if auto_exec:
        hits.append(hit("office:auto-exec", *auto_exec))
    if suspicious:
        hits.append(hit("office:suspicious-vba", *suspicious))
    if auto_exec and suspicious:
        hits.append(hit("office:auto-exec-suspicious-macro", *auto_exec[:3], *suspicious[:3]))
    elif auto_exec:
        hits.append(hit("office:auto-exec-macro", *auto_exec[:3]))
    findings["heuristics"] = hits
    return findings


ANALYZER = Analyzer(
    name="office", version="1", run=analyze, accepts=tuple(f"Document/{kind}" for kind in OFFICE_SUBTYPES)
)
