"""The analysis engine: turns one spooled file into a `tc_report` list (design §4.1).

Entry 0 is the submitted file; unpacked children follow it as the engine grows. Each
analyzer's failure is recorded in the entry it was working on, never raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.analysis import content, identify

log = logging.getLogger(__name__)

CLASSIFICATION_CODES = {"unknown": 0, "goodware": 1, "suspicious": 2, "malicious": 3}


@dataclass
class Submission:
    """One file to analyze, with what the upload already learned about it."""

    path: Path
    file_name: str = ""
    digests: dict[str, str] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)


def empty_classification() -> dict[str, Any]:
    return {
        "classification": CLASSIFICATION_CODES["unknown"],
        "factor": 0,
        "rca_factor": 0,
        "result": "",
        "propagated": False,
        "scan_results": [],
    }


def file_entry(index: int, submission: Submission) -> dict[str, Any]:
    """The report entry for one file: identification, hashes, size and entropy."""
    errors: list[dict[str, str]] = []
    stats = content.scan(submission.path, submission.digests)
    try:
        identity = identify.identify(stats["head"])
    except Exception as error:  # libmagic trouble must not fail the task
        log.warning("identification failed for %s: %s", submission.path, error)
        errors.append({"analyzer": "identify", "error": str(error)})
        identity = {"file_type": "Binary", "file_subtype": "None", "mime_type": "", "description": ""}
    info_file = {
        "file_type": identity["file_type"],
        "file_subtype": identity["file_subtype"],
        "file_name": submission.file_name,
        "file_path": submission.file_name,
        "mime_type": identity["mime_type"],
        "description": identity["description"],
        "size": stats["size"],
        "entropy": stats["entropy"],
        "hashes": [{"name": name, "value": value} for name, value in stats["digests"].items()],
    }
    kind = identity["description"] or identity["file_type"]
    story = f"This file ({submission.file_name or 'unnamed'}) was identified as {kind}."
    entry: dict[str, Any] = {
        "index": index,
        "info": {"file": info_file},
        "classification": empty_classification(),
        "indicators": [],
        "interesting_strings": [],
        "metadata": {},
        "story": [{"caption": "Summary", "content": story}],
        "tags": [],
    }
    if errors:
        entry["errors"] = errors
    return entry


def file_stats(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for entry in entries:
        info = entry["info"]["file"]
        kind = (info["file_type"], info["file_subtype"])
        counts[kind] = counts.get(kind, 0) + 1
    return [
        {"type": file_type, "subtype": subtype, "count": count}
        for (file_type, subtype), count in sorted(counts.items())
    ]


def analyze_file(submission: Submission) -> list[dict[str, Any]]:
    entries = [file_entry(0, submission)]
    entries[0]["info"]["statistics"] = {"file_stats": file_stats(entries)}
    return entries
