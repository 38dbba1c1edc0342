"""The analysis engine: turns one spooled file into a `tc_report` list (design §4.1).

Entry 0 is the submitted file; every file unpacked from it follows, depth first, with its
`file_path` inside its parent and a `parent_relationship`. Each analyzer in `ANALYZERS` is
run over every file; one analyzer failing on one file is recorded in that file's entry
(`errors`) and never fails the task.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from common.settings import WorkerSettings
from worker.analysis import (
    classify,
    content,
    elf,
    fuzzy,
    identify,
    office,
    pdf,
    pe,
    ruleset,
    strings,
    unpack,
    yara_scan,
)
from worker.analysis.context import CLASSIFICATION_CODES, Analyzer, FileContext, Findings

log = logging.getLogger(__name__)

__all__ = ["CLASSIFICATION_CODES", "Submission", "analyze_file"]

# Run in this order over every file; `identify` first so the others see the refined type.
ANALYZERS: tuple[tuple[str, Analyzer], ...] = (
    ("identify", identify.refine),
    ("fuzzy_hash", fuzzy.analyze),
    ("strings", strings.analyze),
    ("yara", yara_scan.analyze),
    ("pe", pe.analyze),
    ("elf", elf.analyze),
    ("office", office.analyze),
    ("pdf", pdf.analyze),
)
UNKNOWN_IDENTITY = {"file_type": "Binary", "file_subtype": "None", "mime_type": "", "description": ""}


@dataclass
class Submission:
    """One file to analyze, with what the upload already learned about it."""

    path: Path
    file_name: str = ""
    digests: dict[str, str] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    # The node's settings; None: read from the environment once per process.
    settings: WorkerSettings | None = None


@dataclass
class Walk:
    """State shared by every file of one task."""

    settings: WorkerSettings
    user_data: dict[str, Any]
    budget: unpack.Budget
    ruleset: Any
    entries: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def environment_settings() -> WorkerSettings:
    return WorkerSettings()


def empty_classification() -> dict[str, Any]:
    return classify.classify([])


def merge(entry: dict[str, Any], findings: Findings, context: FileContext) -> None:
    info = entry["info"]["file"]
    if "identity" in findings:
        context.identity.update(findings["identity"])
        info.update({key: findings["identity"][key] for key in ("file_type", "file_subtype")})
    info["hashes"].extend(findings.get("hashes", []))
    deep_update(entry["metadata"], findings.get("metadata", {}))
    entry["indicators"].extend(findings.get("indicators", []))
    entry["interesting_strings"].extend(findings.get("interesting_strings", []))
    entry["_scan_results"].extend(findings.get("scan_results", []))
    entry["_story"].extend(findings.get("story", []))
    for tag in findings.get("tags", []):
        if tag not in entry["tags"]:
            entry["tags"].append(tag)
    for error in findings.get("errors", []):
        entry.setdefault("errors", []).append({"analyzer": "unpack", "error": error})


def deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value


def new_entry(walk: Walk, path: Path, file_name: str, file_path: str, digests: dict[str, str], depth: int):
    """Identify and hash one file; returns its entry and the context analyzers get."""
    stats = content.scan(path, digests)
    errors: list[dict[str, str]] = []
    try:
        identity = identify.identify(stats["head"][: identify.MAGIC_BYTES])
    except SoftTimeLimitExceeded:
        raise  # the task's time limit must end the task, not one analyzer
    except Exception as error:  # libmagic trouble must not fail the task
        log.warning("identification failed for %s: %s", path, error)
        errors.append({"analyzer": "identify", "error": str(error)})
        identity = dict(UNKNOWN_IDENTITY)
    info_file = {
        "file_type": identity["file_type"],
        "file_subtype": identity["file_subtype"],
        "file_name": file_name,
        "file_path": file_path,
        "mime_type": identity["mime_type"],
        "description": identity["description"],
        "size": stats["size"],
        "entropy": stats["entropy"],
        "hashes": [{"name": name, "value": value} for name, value in stats["digests"].items()],
    }
    entry: dict[str, Any] = {
        "index": len(walk.entries),
        "info": {"file": info_file},
        "classification": empty_classification(),
        "indicators": [],
        "interesting_strings": [],
        "metadata": {},
        "story": [],
        "tags": [],
        "_scan_results": [],
        "_story": [],
    }
    if errors:
        entry["errors"] = errors
    context = FileContext(
        path=path,
        file_name=file_name,
        file_path=file_path,
        depth=depth,
        size=stats["size"],
        head=stats["head"],
        identity=identity,
        settings=walk.settings,
        deadline=time.monotonic() + walk.settings.analysis_file_time_limit_seconds,
        user_data=walk.user_data,
        ruleset=walk.ruleset,
    )
    return entry, context


def run_analyzers(entry: dict[str, Any], context: FileContext) -> None:
    for name, analyzer in ANALYZERS:
        if time.monotonic() > context.deadline:
            limit = context.settings.analysis_file_time_limit_seconds
            entry.setdefault("errors", []).append(
                {"analyzer": name, "error": f"skipped: the file's time limit of {limit:g} s was reached"}
            )
            continue
        try:
            findings = analyzer(context)
        except SoftTimeLimitExceeded:
            raise  # the task's time limit must end the task, not one analyzer
        except Exception as error:
            log.info("analyzer %s failed on %s: %s", name, context.file_path, error)
            entry.setdefault("errors", []).append(
                {"analyzer": name, "error": f"{type(error).__name__}: {error}"}
            )
            continue
        merge(entry, findings, context)


def analyze_one(
    walk: Walk,
    path: Path,
    file_name: str,
    file_path: str,
    digests: dict[str, str],
    depth: int,
    parent_index: int | None,
) -> None:
    """Analyze one file, then, depth first, everything unpacked from it."""
    entry, context = new_entry(walk, path, file_name, file_path, digests, depth)
    if parent_index is not None:
        entry["parent_relationship"] = {"parent_index": parent_index, "relationship": "container"}
    walk.entries.append(entry)
    run_analyzers(entry, context)
    try:
        extraction = unpack.unpack(context, walk.budget)
    except SoftTimeLimitExceeded:
        raise  # the task's time limit must end the task, not one analyzer
    except Exception as error:
        entry.setdefault("errors", []).append(
            {"analyzer": "unpack", "error": f"{type(error).__name__}: {error}"}
        )
        extraction = None
    if extraction is not None:
        merge(entry, unpack.findings(extraction), context)
    entry["classification"] = classify.classify(entry.pop("_scan_results"))
    if extraction is None:
        return
    try:
        for child in extraction.children:
            try:
                child_name = PurePosixPath(child.file_path).name or child.file_path
                analyze_one(walk, child.path, child_name, child.file_path, {}, depth + 1, entry["index"])
            finally:
                child.path.unlink(missing_ok=True)
    finally:
        extraction.discard()


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


def write_story(entry: dict[str, Any], children: int) -> None:
    info = entry["info"]["file"]
    kind = info["description"] or f"{info['file_type']}/{info['file_subtype']}"
    sentences = [f"This file ({info['file_name'] or 'unnamed'}) was identified as {kind}."]
    if info["file_subtype"] != "None":
        sentences.append(f"Its type is {info['file_type']} ({info['file_subtype']}).")
    if children:
        sentences.append(f"{children} file(s) were unpacked from it.")
    sentences.extend(entry.pop("_story"))
    sentences.append(classify.verdict_sentence(entry["classification"]))
    entry["story"] = [{"caption": "Summary", "content": " ".join(sentences)}]


def load_ruleset(settings: WorkerSettings) -> tuple[Any, str | None]:
    try:
        pull_marker = settings.spool_dir / ruleset.PULL_MARKER
        rules = ruleset.current_ruleset(
            settings.yara_rules_dir, settings.yara_check_interval_seconds, pull_marker=pull_marker
        )
        return rules, None
    except SoftTimeLimitExceeded:
        raise  # the task's time limit must end the task, not one analyzer
    except Exception as error:  # no rules is a degraded report, not a failed task
        log.exception("YARA rules could not be loaded")
        return None, f"{type(error).__name__}: {error}"


def analyze_file(submission: Submission) -> list[dict[str, Any]]:
    """The engine entry point (SCANHUB_ENGINE): the report list for one submitted file."""
    settings = submission.settings or environment_settings()
    rules, rules_error = load_ruleset(settings)
    user_data = submission.user_data if isinstance(submission.user_data, dict) else {}
    walk = Walk(settings, user_data, unpack.Budget.from_settings(settings), rules)
    analyze_one(
        walk, submission.path, submission.file_name, submission.file_name, submission.digests, 0, None
    )
    if rules_error:
        walk.entries[0].setdefault("errors", []).append({"analyzer": "yara", "error": rules_error})
    classify.propagate(walk.entries)
    children: dict[int, int] = {}
    for entry in walk.entries:
        if "parent_relationship" in entry:
            parent = entry["parent_relationship"]["parent_index"]
            children[parent] = children.get(parent, 0) + 1
    for entry in walk.entries:
        write_story(entry, children.get(entry["index"], 0))
    walk.entries[0]["info"]["statistics"] = {"file_stats": file_stats(walk.entries)}
    if rules is not None:
        walk.entries[0]["info"]["ruleset_id"] = rules.ruleset_id
    return walk.entries
