"""The heuristics table: every format heuristic's id, meaning and verdict, in one place.

Analyzers name a row by id (`hit("pe:injection", "CreateRemoteThread")`); the engine turns
each hit into an indicator and, for rows with a classification, a "Format heuristics"
verdict. A row without a classification is an indicator only. Tags listed on a row are
added to the file's tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.analysis.context import HeuristicHit, indicator, verdict

ENGINE = "Format heuristics"
# The extraction budget's limits (see context.py), each reported as unpack:limit:<name>.
UNPACK_LIMITS = ("depth", "children", "total_bytes", "ratio", "time")
VERSION = "1"


@dataclass(frozen=True)
class Heuristic:
    id: str
    category: str
    description: str
    priority: int  # the indicator's priority, 0-10
    classification: str | None = None  # suspicious / malicious; None: an indicator only
    factor: int = 0  # 0-5
    result: str = ""  # threat name given with the verdict
    tags: tuple[str, ...] = ()


TABLE: tuple[Heuristic, ...] = (
    # Portable executables
    Heuristic("pe:wx-section", "evasion", "Has a section both writable and executable", 4),
    Heuristic("pe:packed", "evasion", "Has high-entropy (packed or encrypted) sections", 4),
    Heuristic("pe:overlay", "evasion", "Carries a high-entropy overlay", 4),
    Heuristic("pe:no-imports", "evasion", "Imports nothing (resolves APIs at run time)", 3),
    Heuristic(
        "pe:injection",
        "execution",
        "Can write code into another process and run it",
        7,
        "suspicious",
        2,
        "Win32.Suspicious.Injector",
    ),
    Heuristic("pe:signed", "identity", "Carries an Authenticode signature", 1, tags=("signed",)),
    Heuristic("pe:upx", "evasion", "Packed with UPX", 4, tags=("packed", "upx")),
    # ELF
    Heuristic("elf:no-sections", "evasion", "Has no section headers (stripped or packed)", 3),
    Heuristic("elf:upx", "evasion", "Packed with UPX", 4, tags=("packed", "upx")),
    # PDF
    Heuristic("pdf:javascript", "execution", "Contains JavaScript", 6, tags=("pdf-javascript",)),
    Heuristic("pdf:auto-action", "execution", "Runs an action when opened", 5),
    Heuristic("pdf:launch", "execution", "Can launch a program", 8),
    Heuristic("pdf:embedded-file", "document", "Carries embedded files", 4),
    Heuristic(
        "pdf:javascript-on-open",
        "execution",
        "Runs JavaScript when opened",
        7,
        "suspicious",
        3,
        "Document.Suspicious.PDFJavaScript",
    ),
    Heuristic(
        "pdf:active-content",
        "execution",
        "Holds JavaScript or a launch action",
        6,
        "suspicious",
        2,
        "Document.Suspicious.PDFAction",
    ),
    # Office documents
    Heuristic(
        "office:macros",
        "macro",
        "Contains VBA macros",
        5,
        "suspicious",
        1,
        "Document.Suspicious.Macro",
        ("macro",),
    ),
    Heuristic("office:auto-exec", "macro", "Runs a macro automatically", 8),
    Heuristic("office:suspicious-vba", "macro", "Macro uses suspicious functions", 7),
    Heuristic(
        "office:auto-exec-macro",
        "macro",
        "Runs a macro automatically",
        8,
        "suspicious",
        3,
        "Document.Suspicious.AutoExecMacro",
    ),
    Heuristic(
        "office:auto-exec-suspicious-macro",
        "macro",
        "Runs a macro automatically that uses suspicious functions",
        9,
        "malicious",
        4,
        "Document.Trojan.AutoExecMacro",
    ),
    Heuristic("office:embedded-object", "document", "Carries an embedded object", 5, tags=("embedded",)),
    # Documents: embedded objects and hidden files
    Heuristic(
        "document:hidden-file",
        "document",
        "Hides a file (an executable, an archive, a document) in its data rather than embedding it",
        6,
        tags=("hidden-file",),
    ),
    # Containers
    Heuristic(
        "archive:encrypted",
        "unpacking",
        "Encrypted container opened with a password from the list",
        3,
        tags=("encrypted-archive",),
    ),
    Heuristic(
        "archive:password-unknown",
        "unpacking",
        "Encrypted container whose password is not in the password list",
        6,
        tags=("encrypted-archive", "password-unknown"),
    ),
    *(
        Heuristic(
            f"unpack:limit:{limit}",
            "unpacking",
            f"Unpacking stopped by the {limit} limit",
            6,
            tags=("unpack-limit",),
        )
        for limit in UNPACK_LIMITS
    ),
    Heuristic(
        "unpack:tool-missing",
        "unpacking",
        "Not unpacked: the tool needed for this format is not installed",
        4,
        tags=("tool-missing",),
    ),
)
HEURISTICS: dict[str, Heuristic] = {row.id: row for row in TABLE}


def resolve(hits: list[HeuristicHit]) -> dict[str, list[Any]]:
    """The indicators, verdicts and tags a list of hits stands for (KeyError on an unknown id)."""
    indicators: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    tags: list[str] = []
    for item in hits:
        row = HEURISTICS[item["id"]]
        reasons = item["reasons"]
        indicators.append(indicator(row.id, row.category, row.description, row.priority, reasons))
        if row.classification:
            reason = row.description[0].lower() + row.description[1:]
            if reasons:
                reason += f" ({', '.join(reasons[:3])})"
            verdicts.append(
                verdict(ENGINE, "heuristic", row.classification, row.factor, row.result, reason, VERSION)
            )
        tags.extend(tag for tag in row.tags if tag not in tags)
    return {"indicators": indicators, "scan_results": verdicts, "tags": tags}
