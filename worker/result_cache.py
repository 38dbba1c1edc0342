"""The result cache: a file analyzed on this node recently gets a copy of that report.

A task's result is reused when everything that decides its report is the same: the file's
SHA256, its file name (the report names it, and YARA rules may test it), the password list
the submitter sent (an archive opened with one list may stay closed with another), the
YARA ruleset id (a ruleset change invalidates every entry), the engine's version (the
engine's dotted path and every analyzer's name and version, plus scanhub's own version) and
the settings the engine reads (unpacking limits, default passwords, strings limits...), so a
configuration change invalidates it too. A report in which an analyzer failed or hit a limit
(a time limit under load, say) is not cached: the next copy of the file gets its own chance.

The cache maps that key to the task that was analyzed, for `SCANHUB_CACHE_SECONDS`
(default 3600; 0 turns the cache off). A hit copies that task's stored report into the new
task, which is otherwise a task of its own: its id, custom_data, outputs, and
`"cached": true` in its view. If the earlier task has been deleted or has expired, the file
is analyzed as usual.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
from typing import Any

import orjson

from worker.settings import WorkerSettings
from worker.store import DONE, SyncTaskStore

log = logging.getLogger(__name__)


# The settings the engine reads: a change to any of them changes reports.
ENGINE_SETTINGS = (
    "unpack_max_depth",
    "unpack_max_children",
    "unpack_max_total_bytes",
    "unpack_max_ratio",
    "analysis_file_time_limit_seconds",
    "password_list_max",
    "default_password_list",
    "office_max_bytes",
    "strings_scan_bytes",
    "strings_max_per_category",
    "yara_scan_timeout_seconds",
)


def settings_digest(settings: WorkerSettings) -> str:
    values = {name: getattr(settings, name) for name in ENGINE_SETTINGS}
    return hashlib.sha256(orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def cacheable(report: Any) -> bool:
    """Only a report in which every analyzer ran to completion (no error, no limit hit)."""
    for entry in report if isinstance(report, list) else []:
        if entry.get("errors"):
            return False
        if any(run.get("outcome") != "ok" for run in entry.get("info", {}).get("analyzers", [])):
            return False
    return True


@functools.cache
def engine_version(dotted_path: str) -> str:
    try:
        package = importlib.metadata.version("scanhub")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    from worker.analysis import registry  # the engine: loaded by the processes that analyze

    analyzers = ",".join(f"{analyzer.name}:{analyzer.version}" for analyzer in registry.ANALYZERS)
    return hashlib.sha256(f"{package}|{dotted_path}|{analyzers}".encode()).hexdigest()[:16]


def cache_key(settings: WorkerSettings, record: dict[str, str], user_data: Any) -> str | None:
    """The key of this task's result, or None when it cannot be cached (cache off, no
    SHA256 yet, no YARA ruleset loaded). Computed once, before the analysis: a ruleset that
    changes during it then files the report under a key no one looks up any more, never a
    report of the old rules under the new ruleset's key."""
    sha256 = record.get("sha256")
    if settings.cache_seconds <= 0 or not sha256:
        return None
    from worker.analysis import engine

    rules, _error = engine.load_ruleset(settings)
    if rules is None:
        return None
    passwords = user_data.get("password_list") if isinstance(user_data, dict) else None
    parts = [
        sha256,
        record.get("file_name", ""),
        orjson.dumps(passwords).decode() if passwords else "",
        rules.ruleset_id,
        engine_version(settings.engine),
        settings_digest(settings),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cached_report(store: SyncTaskStore, key: str) -> tuple[int, Any] | None:
    """(earlier task id, its report) when the result of `key` is cached, else None."""
    source = store.cached_task(key)
    if source is None:
        return None
    fields = store.get(source)
    if fields is None or fields.get("status") != DONE or "tc_report" not in fields:
        return None  # deleted or expired: analyze again
    return source, orjson.loads(fields["tc_report"])
