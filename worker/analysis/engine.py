"""The analysis engine: turns one spooled file into a `tc_report` list.

Entry 0 is the submitted file; every file extracted from it follows, depth first, with its
`file_path` inside its parent and a `parent_relationship`. Each file is routed to the
analyzers of the registry that accept it (`Analyzer.wants`), in registry order; the engine
times each one (`info.analyzers` in the entry), records a failure under the analyzer's name
(`errors`) without failing the task, and merges the findings. Children an analyzer extracted
are analyzed once their parent is done, under the task's shared extraction budget.

`AnalysisTimeout` is the only exception that ends a task's analysis; it is raised by the
Celery task's timers, never caught here.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.analysis import classify, content, heuristics, identify, registry, ruleset
from worker.analysis.context import (
    CLASSIFICATION_CODES,
    AnalysisTimeout,
    Analyzer,
    Budget,
    FileContext,
    Findings,
    LimitReached,
    Submission,
    child_name,
    hit,
)
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

__all__ = ["CLASSIFICATION_CODES", "AnalysisTimeout", "Submission", "analyze_file"]

UNKNOWN_IDENTITY = {"file_type": "Binary", "file_subtype": "None", "mime_type": "", "description": ""}


@dataclass
class Walk:
    """State shared by every file of one task."""

    settings: WorkerSettings
    user_data: dict[str, Any]
    budget: Budget
    ruleset: Any
    analyzers: tuple[Analyzer, ...]
    entries: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def environment_settings() -> WorkerSettings:
    return WorkerSettings()


def merge(entry: dict[str, Any], findings: Findings, context: FileContext) -> None:
    info = entry["info"]["file"]
    if "identity" in findings:
        identity = findings["identity"]
        context.identity.update(identity)
        info.update({key: value for key, value in identity.items() if key in info})
    resolved = heuristics.resolve(findings.get("heuristics", []))
    info["hashes"].extend(findings.get("hashes", []))
    deep_update(entry["metadata"], findings.get("metadata", {}))
    entry["indicators"].extend([*findings.get("indicators", []), *resolved["indicators"]])
    entry["interesting_strings"].extend(findings.get("interesting_strings", []))
    entry["_scan_results"].extend([*findings.get("scan_results", []), *resolved["scan_results"]])
    entry["_story"].extend(findings.get("story", []))
    for tag in [*findings.get("tags", []), *resolved["tags"]]:
        if tag not in entry["tags"]:
            entry["tags"].append(tag)
            context.tags.add(tag)


def deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value


def record_error(entry: dict[str, Any], analyzer: str, error: str) -> None:
    entry.setdefault("errors", []).append({"analyzer": analyzer, "error": error})


def new_entry(
    walk: Walk, path: Path, file_name: str, file_path: str, digests: dict[str, str], depth: int
) -> tuple[dict[str, Any], FileContext]:
    """Hash and identify one file; returns its entry and the context analyzers get."""
    stats = content.scan(path, digests)
    errors: list[dict[str, str]] = []
    try:
        identity = identify.identify(stats["head"])
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
        "info": {"file": info_file, "analyzers": []},
        "classification": classify.classify([]),
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
        budget=walk.budget,
    )
    return entry, context


def run_one(analyzer: Analyzer, entry: dict[str, Any], context: FileContext) -> None:
    """Run one analyzer on one file: timed, limited, its failure recorded under its name."""
    file_deadline = context.deadline
    if analyzer.time_limit is not None:
        context.deadline = min(file_deadline, time.monotonic() + analyzer.time_limit)
    extraction = context.extraction
    before = extraction.progress()
    started = time.perf_counter()
    findings: Findings = {}
    outcome = "ok"
    try:
        findings = analyzer.run(context)
    except LimitReached as limit:
        context.extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
        outcome = "limit"
    except AnalysisTimeout:
        raise
    except Exception as error:
        log.info("analyzer %s failed on %s: %s", analyzer.name, context.file_path, error)
        record_error(entry, analyzer.name, f"{type(error).__name__}: {error}")
        outcome = "error"
    finally:
        context.deadline = file_deadline
        entry["info"]["analyzers"].append(
            {
                "name": analyzer.name,
                "version": analyzer.version,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "outcome": outcome,
            }
        )
    if analyzer.extracts and not extraction.format and extraction.progress() != before:
        # The first extractor that found members names the container's format.
        extraction.format = analyzer.name
    for error_text in findings.get("errors", []):
        record_error(entry, analyzer.name, error_text)
    try:
        merge(entry, findings, context)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # malformed findings
        record_error(entry, analyzer.name, f"findings not usable: {type(error).__name__}: {error}")


def run_analyzers(walk: Walk, entry: dict[str, Any], context: FileContext) -> None:
    max_depth = walk.settings.unpack_max_depth
    depth_noted = False
    for analyzer in walk.analyzers:
        if not analyzer.wants(context):
            continue
        if time.monotonic() > context.deadline:
            limit = context.settings.analysis_file_time_limit_seconds
            if not analyzer.extracts:
                record_error(
                    entry, analyzer.name, f"skipped: the file's time limit of {limit:g} s was reached"
                )
            elif not any(noted["limit"] == "time" for noted in context.extraction.limits):
                # Time ran out before an extractor (or during an earlier one, which said so):
                # unpacking stopped at the time limit, reported once.
                detail = f"the file's time limit of {limit:g} s was reached before {analyzer.name} ran"
                context.extraction.limits.append({"limit": "time", "detail": detail})
                context.extraction.format = context.extraction.format or analyzer.name
            continue
        if analyzer.extracts and context.depth >= max_depth:
            if not depth_noted:
                detail = f"not unpacked: nested {context.depth} levels deep (limit {max_depth})"
                context.extraction.limits.append({"limit": "depth", "detail": detail})
                context.extraction.format = context.extraction.format or analyzer.name
                depth_noted = True
            continue
        run_one(analyzer, entry, context)


def extraction_findings(context: FileContext) -> Findings:
    """The container's own report: what it held, what was skipped, which limits were hit."""
    log_ = context.extraction
    archive: dict[str, Any] = {
        "format": log_.format,
        "members": max(log_.members, len(log_.children)),
        "extracted": len(log_.children),
        "skipped": log_.skipped,
        "limits_hit": log_.limits,
    }
    if log_.skipped_unlisted:
        archive["skipped_unlisted"] = log_.skipped_unlisted
    if log_.password_source:
        archive["password_source"] = log_.password_source
    findings: Findings = {
        "metadata": {"archive": archive},
        "heuristics": [hit(f"unpack:limit:{limit['limit']}", limit["detail"]) for limit in log_.limits],
        "story": [
            f"Unpacking stopped at the {limit['limit']} limit: {limit['detail']}." for limit in log_.limits
        ],
    }
    return findings


def analyze_one(
    walk: Walk,
    path: Path,
    file_name: str,
    file_path: str,
    digests: dict[str, str],
    depth: int,
    parent: tuple[int, str] | None,
) -> None:
    """Analyze one file, then, depth first, every child its analyzers extracted."""
    entry, context = new_entry(walk, path, file_name, file_path, digests, depth)
    if parent is not None:
        entry["parent_relationship"] = {"parent_index": parent[0], "relationship": parent[1]}
    walk.entries.append(entry)
    try:
        run_analyzers(walk, entry, context)
        if context.extraction.used:
            merge(entry, extraction_findings(context), context)
        entry["classification"] = classify.classify(entry.pop("_scan_results"))
        for child in context.extraction.children:
            try:
                analyze_one(
                    walk,
                    child.path,
                    child_name(child.file_path),
                    child.file_path,
                    {},
                    depth + 1,
                    (entry["index"], child.relationship),
                )
            finally:
                child.path.unlink(missing_ok=True)
    finally:
        context.extraction.discard()


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
    except Exception as error:  # no rules is a degraded report, not a failed task
        log.exception("YARA rules could not be loaded")
        return None, f"{type(error).__name__}: {error}"


def analyze_file(
    submission: Submission, analyzers: tuple[Analyzer, ...] | None = None
) -> list[dict[str, Any]]:
    """The engine entry point (SCANHUB_ENGINE): the report list for one submitted file.

    `analyzers` defaults to the registry's; a test or a site may pass its own selection.
    """
    settings = submission.settings or environment_settings()
    rules, rules_error = load_ruleset(settings)
    user_data = submission.user_data if isinstance(submission.user_data, dict) else {}
    walk = Walk(settings, user_data, Budget.from_settings(settings), rules, analyzers or registry.ANALYZERS)
    analyze_one(
        walk, submission.path, submission.file_name, submission.file_name, submission.digests, 0, None
    )
    if rules_error:
        record_error(walk.entries[0], "yara", rules_error)
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
