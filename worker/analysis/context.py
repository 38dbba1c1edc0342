"""The one interface every analyzer shares: a file's context in, a partial report entry out.

An analyzer is a plain function `analyze(context) -> Findings`. Findings is a dict with any
of these keys, merged by the engine into the file's entry (design §4.1):

- `identity`: refined `file_type` / `file_subtype` (and `description`);
- `hashes`: extra `{"name", "value"}` items (imphash, tlsh, ...);
- `metadata`: nested dict merged into the entry's `metadata` (e.g. `{"application": {"pe": ...}}`);
- `indicators`: `{priority, category, description, id, reasons}` items;
- `interesting_strings`: `{category, values}` items;
- `scan_results`: verdicts `{name, type, classification, factor, result, version, reason}`;
- `tags`, `story` (sentences for the summary), `limits` (unpacking limits hit).

An analyzer that raises has its error recorded in that file's entry by the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.settings import WorkerSettings

CLASSIFICATION_CODES = {"unknown": 0, "goodware": 1, "suspicious": 2, "malicious": 3}
CLASSIFICATION_NAMES = {code: name for name, code in CLASSIFICATION_CODES.items()}

Findings = dict[str, Any]


@dataclass
class FileContext:
    """One file being analyzed: where it is, what it is so far, and the limits it runs under."""

    path: Path
    file_name: str
    file_path: str
    depth: int
    size: int
    head: bytes
    identity: dict[str, str]
    settings: WorkerSettings
    deadline: float  # time.monotonic() past which this file's analysis stops
    user_data: dict[str, Any] = field(default_factory=dict)
    ruleset: Any = None  # worker.analysis.ruleset.CompiledRuleset, when YARA rules loaded

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def is_a(self, file_type: str, *subtypes: str) -> bool:
        if self.identity.get("file_type") != file_type:
            return False
        return not subtypes or self.identity.get("file_subtype") in subtypes


Analyzer = Callable[[FileContext], Findings]


def indicator(
    indicator_id: str, category: str, description: str, priority: int, reasons: list[str] | None = None
) -> dict[str, Any]:
    return {
        "priority": priority,
        "category": category,
        "description": description,
        "id": indicator_id,
        "reasons": reasons or [],
    }


def verdict(
    engine: str,
    engine_type: str,
    classification: str,
    factor: int,
    result: str,
    reason: str,
    version: str = "",
) -> dict[str, Any]:
    """One engine's say on a file: an item of `classification.scan_results`."""
    return {
        "name": engine,
        "type": engine_type,
        "classification": CLASSIFICATION_CODES.get(classification, 0),
        "factor": max(0, min(5, int(factor))),
        "result": result,
        "version": version,
        "reason": reason,
    }
