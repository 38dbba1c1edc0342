"""What a finished file's report says, and what a whole scan's exit code is.

Classification codes are the ones in every scanhub report (`classification.classification`
of entry 0): 0 unknown, 1 goodware, 2 suspicious, 3 malicious.

Exit codes of `scanhub scan`: 2 when any file ended in an error (refused, task failed,
connection lost, not finished in time), else 1 when `--fail-on` is given and any file is
classified at or above that level, else 0. An error wins over a verdict: a scan that could
not look at every file cannot vouch that the rest is clean, and a CI job must not read
"malicious found" as "everything was scanned". 130 after Ctrl-C (the shell's convention).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CLASSIFICATIONS = {"unknown": 0, "goodware": 1, "suspicious": 2, "malicious": 3}
CLASSIFICATION_NAMES = {code: name for name, code in CLASSIFICATIONS.items()}
FAIL_ON_LEVELS = ("suspicious", "malicious")

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# A file's end state in the scan's results: the Worker's own `done` and `failed`, and
# `error` for what went wrong on the way (refused upload, lost connection, time-out).
DONE, FAILED, ERROR = "done", "failed", "error"


@dataclass(frozen=True)
class Verdict:
    file_type: str
    classification: int
    threat_name: str
    children: int

    @property
    def classification_name(self) -> str:
        return CLASSIFICATION_NAMES.get(self.classification, "unknown")


def first_entry(report: Any) -> dict[str, Any]:
    entries = report if isinstance(report, list) else []
    return entries[0] if entries and isinstance(entries[0], dict) else {}


def nested(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def count_children(report: Any) -> int:
    """Files unpacked from the sample. The report's own file statistics count every entry of
    the tree (the sample too), whatever the report type drops; without them (a site's own
    report type may leave them out), the child entries the report holds."""
    stats = nested(first_entry(report), "info", "statistics", "file_stats")
    if isinstance(stats, list) and stats:
        counts = [item.get("count") for item in stats if isinstance(item, dict)]
        if all(isinstance(count, int) for count in counts):
            return max(0, sum(counts) - 1)  # type: ignore[arg-type]
    return max(0, len(report) - 1) if isinstance(report, list) else 0


def verdict_of(task: dict[str, Any]) -> Verdict:
    """The verdict of a processed task (GET task_url's JSON) from its report's first entry."""
    report = task.get("tc_report")
    entry = first_entry(report)
    code = nested(entry, "classification", "classification")
    if not isinstance(code, int) or isinstance(code, bool):
        code = 0
    file_type = nested(entry, "info", "file", "file_type")
    subtype = nested(entry, "info", "file", "file_subtype")
    if file_type and subtype and subtype != "None":
        file_type = f"{file_type}/{subtype}"
    threat = nested(entry, "classification", "result")
    return Verdict(str(file_type or ""), code, str(threat or ""), count_children(report))


def flagged(classification: int, fail_on: str | None) -> bool:
    """Whether a classification is at or above the `--fail-on` level."""
    return fail_on is not None and classification >= CLASSIFICATIONS[fail_on]


def exit_code(states: Iterable[str], classifications: Iterable[int], fail_on: str | None) -> int:
    """The scan's exit code from every file's end state and every classification (see above)."""
    if any(state != DONE for state in states):
        return EXIT_ERROR
    if any(flagged(code, fail_on) for code in classifications):
        return EXIT_FLAGGED
    return EXIT_OK
