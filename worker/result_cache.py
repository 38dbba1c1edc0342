"""The result cache: a file analyzed on this node recently gets a copy of that report.

A task's result is reused when everything that decides its report is the same: the file's
SHA256, its file name (the report names it, and YARA rules may test it), the password list
the submitter sent (an archive opened with one list may stay closed with another), the
YARA ruleset id (a ruleset change invalidates every entry) and the engine's version (the
engine's dotted path and every analyzer's name and version, plus scanhub's own version).

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

from worker.analysis import engine, registry
from worker.settings import WorkerSettings
from worker.store import DONE, SyncTaskStore

log = logging.getLogger(__name__)


@functools.cache
def engine_version(dotted_path: str) -> str:
    try:
        package = importlib.metadata.version("scanhub")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    analyzers = ",".join(f"{analyzer.name}:{analyzer.version}" for analyzer in registry.ANALYZERS)
    return hashlib.sha256(f"{package}|{dotted_path}|{analyzers}".encode()).hexdigest()[:16]


def cache_key(settings: WorkerSettings, record: dict[str, str]) -> str | None:
    """The key of this task's result, or None when it cannot be cached (cache off, no
    SHA256 yet, no YARA ruleset loaded)."""
    sha256 = record.get("sha256")
    if settings.cache_seconds <= 0 or not sha256:
        return None
    rules, _error = engine.load_ruleset(settings)
    if rules is None:
        return None
    user_data = orjson.loads(record.get("user_data") or "{}")
    passwords = user_data.get("password_list") if isinstance(user_data, dict) else None
    parts = [
        sha256,
        record.get("file_name", ""),
        orjson.dumps(passwords).decode() if passwords else "",
        rules.ruleset_id,
        engine_version(settings.engine),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cached_report(
    store: SyncTaskStore, settings: WorkerSettings, record: dict[str, str]
) -> tuple[int, Any] | None:
    """(earlier task id, its report) when this task's result is cached, else None."""
    key = cache_key(settings, record)
    if key is None:
        return None
    source = store.cached_task(key)
    if source is None:
        return None
    fields = store.get(source)
    if fields is None or fields.get("status") != DONE or "tc_report" not in fields:
        return None  # deleted or expired: analyze again
    return source, orjson.loads(fields["tc_report"])


def remember(store: SyncTaskStore, settings: WorkerSettings, record: dict[str, str], task_id: int) -> None:
    key = cache_key(settings, record)
    if key is not None:
        store.remember_result(key, task_id, settings.cache_seconds)
