"""PDF actions by a bounded scan of the raw bytes: JavaScript, OpenAction/AA, Launch, embedded files.

Names are normalized (`/J#61vaScript` is `/JavaScript`). Objects inside compressed object
streams are not seen; their count is reported so a reader knows what was not looked at.
Embedded files are the PDF extractor's to report (`pdf:embedded-file`, with their names, and
the `embedded_files` count): it parses the file, object streams included, and extracts what
it reports. The name count here stands in only where the extractor does not look.
"""

from __future__ import annotations

import re

from worker.analysis.context import Analyzer, FileContext, Findings, HeuristicHit, hit
from worker.analysis.extractors import pdfobjects

SCAN_BYTES = 32 * 1024 * 1024
NAME = re.compile(rb"/[A-Za-z0-9#_.\-]{1,64}")
HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
WATCHED = {
    b"/JavaScript": "javascript",
    b"/JS": "javascript",
    b"/OpenAction": "open_action",
    b"/AA": "additional_actions",
    b"/Launch": "launch",
    b"/EmbeddedFile": "embedded_files",
    b"/FileAttachment": "file_attachments",
    b"/EF": "embedded_file_specs",
    b"/URI": "uri",
    b"/SubmitForm": "submit_form",
    b"/AcroForm": "acroform",
    b"/XFA": "xfa",
    b"/ObjStm": "object_streams",
    b"/Encrypt": "encrypted",
}


def count_names(data: bytes) -> dict[str, int]:
    counts = dict.fromkeys(sorted(set(WATCHED.values())), 0)
    for match in NAME.finditer(data):
        name = match.group(0)
        if b"#" in name:
            name = HEX_ESCAPE.sub(lambda escape: bytes([int(escape.group(1), 16)]), name)
        key = WATCHED.get(name)
        if key:
            counts[key] += 1
    return counts


def analyze(context: FileContext) -> Findings:
    with context.path.open("rb") as handle:
        data = handle.read(SCAN_BYTES)
    version = re.search(rb"%PDF-(\d\.\d)", data[:1024])
    counts = count_names(data)
    pdf = {
        "version": version.group(1).decode() if version else "",
        "objects": len(re.findall(rb"\d+\s+\d+\s+obj\b", data)),
        "scanned_bytes": len(data),
        **counts,
    }
    hits: list[HeuristicHit] = []
    auto_action = counts["open_action"] or counts["additional_actions"]
    if counts["javascript"]:
        hits.append(hit("pdf:javascript"))
    if auto_action:
        hits.append(hit("pdf:auto-action"))
    if counts["launch"]:
        hits.append(hit("pdf:launch"))
    declared = counts["embedded_files"] + counts["file_attachments"] + counts["embedded_file_specs"]
    if declared and not pdfobjects.opens(context):
        hits.append(hit("pdf:embedded-file"))
    if counts["javascript"] and auto_action:
        hits.append(hit("pdf:javascript-on-open"))
    elif counts["javascript"] or counts["launch"]:
        hits.append(hit("pdf:active-content", "launch action" if counts["launch"] else "JavaScript"))
    return {"metadata": {"document": {"pdf": pdf}}, "heuristics": hits}


ANALYZER = Analyzer(name="pdf", version="1", run=analyze, accepts=("Document/PDF",))
