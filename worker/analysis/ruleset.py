"""A node's YARA rulesets: read from the rules directory, compiled once per revision, cached per process.

Every `*.yar` / `*.yara` file under the directory (subdirectories included, as community sets
ship them) is one ruleset, compiled in its own namespace named by its relative path. The
ruleset id (`GET /yara`) is a digest of the file names and contents, so it changes exactly
when the rules change. A process looks at the directory cheaply (names, sizes, mtimes) at most
once per check interval and recompiles only when the contents' digest changed; a file that
does not compile is left out with its compiler error, and the others keep working.

Community rule sets (signature-base, YARA-Forge, ...) use the external variables LOKI and
THOR define; they are declared here with empty defaults (`EXTERNALS`) so such files compile,
and `worker.analysis.yara_scan` passes each file's own values when it scans.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yara

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yar", ".yara")
Fingerprint = tuple[tuple[str, int, int], ...]
# The external variables of LOKI / THOR rule sets, plus scanhub's own identification; every
# ruleset may use them, and a scan sets each file's values (worker.analysis.yara_scan).
EXTERNALS: dict[str, str] = {
    "filename": "",
    "filepath": "",
    "extension": "",
    "filetype": "",
    "owner": "",
    "scanhub_filetype": "",
}


@dataclass(frozen=True)
class RulesetFile:
    """One rule file as sync-status reports it."""

    key: str
    hash: str
    revision: int
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompiledRuleset:
    """All rule files of a directory at one revision, with the compiled rules of the good ones."""

    ruleset_id: str
    revision: int
    files: tuple[RulesetFile, ...]
    rules: Any  # yara.Rules, or None when no file compiled
    fingerprint: Fingerprint
    rule_count: int = 0
    compile_seconds: float = 0.0


def rule_paths(rules_dir: Path) -> list[Path]:
    """Rule files under `rules_dir`, recursively; hidden directories (.git, ...) are skipped."""
    if not rules_dir.is_dir():
        return []
    found = []
    for path in rules_dir.rglob("*"):
        relative = path.relative_to(rules_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in RULE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found, key=lambda path: rule_key(rules_dir, path))


def rule_key(rules_dir: Path, path: Path) -> str:
    """A rule file's key (sync-status, namespace): its path relative to the rules directory."""
    return path.relative_to(rules_dir).as_posix()


def fingerprint(rules_dir: Path) -> Fingerprint:
    """Names, sizes and mtimes: cheap to take before every file, and changes with any edit."""
    entries = []
    for path in rule_paths(rules_dir):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        entries.append((rule_key(rules_dir, path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def read_sources(rules_dir: Path) -> list[tuple[str, bytes, int]]:
    sources = []
    for path in rule_paths(rules_dir):
        try:
            sources.append((rule_key(rules_dir, path), path.read_bytes(), int(path.stat().st_mtime)))
        except FileNotFoundError:
            continue  # removed while we listed it; the next check sees the new state
    return sources


def ruleset_digest(sources: list[tuple[str, bytes, int]]) -> str:
    digest = hashlib.sha1()
    for key, content, _ in sources:
        digest.update(key.encode() + b"\0" + hashlib.sha1(content).digest())
    return digest.hexdigest()


def compile_sources(texts: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """One yara.Rules for every source that compiles, and the compiler error of each that does not.

    Compiling everything at once is the common case; only when that fails is each file
    compiled alone to find the broken ones.
    """
    if not texts:
        return None, {}
    try:
        return yara.compile(sources=texts, includes=False, externals=EXTERNALS), {}
    except yara.Error:
        pass
    errors: dict[str, str] = {}
    for key, text in texts.items():
        try:
            yara.compile(sources={key: text}, includes=False, externals=EXTERNALS)
        except yara.Error as error:
            errors[key] = str(error)
    good = {key: text for key, text in texts.items() if key not in errors}
    if not good:
        return None, errors
    try:
        return yara.compile(sources=good, includes=False, externals=EXTERNALS), errors
    except yara.Error as error:  # files fine alone but clashing together
        return None, {**errors, **{key: f"does not compile with the others: {error}" for key in good}}


def compile_ruleset(rules_dir: Path) -> CompiledRuleset:
    started = time.perf_counter()
    current = fingerprint(rules_dir)
    sources = read_sources(rules_dir)
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, content, _ in sources:
        try:
            texts[key] = content.decode("utf-8")
        except UnicodeDecodeError as error:
            errors[key] = f"not UTF-8 text: {error}"
    rules, compile_errors = compile_sources(texts)
    errors.update(compile_errors)
    compile_seconds = time.perf_counter() - started
    files = tuple(
        RulesetFile(
            key=key,
            hash=hashlib.sha1(content).hexdigest(),
            revision=mtime,
            errors=(errors[key],) if key in errors else (),
        )
        for key, content, mtime in sources
    )
    rule_count = sum(1 for _ in rules) if rules is not None else 0
    for ruleset_file in files:
        if ruleset_file.errors:
            log.warning("YARA ruleset %s left out: %s", ruleset_file.key, ruleset_file.errors[0])
    return CompiledRuleset(
        ruleset_id=ruleset_digest(sources),
        revision=max((mtime for _, _, mtime in sources), default=0),
        files=files,
        rules=rules,
        fingerprint=current,
        rule_count=rule_count,
        compile_seconds=round(compile_seconds, 3),
    )


_cache: dict[Path, CompiledRuleset] = {}
_checked_at: dict[Path, float] = {}
_pulls_seen: dict[Path, str] = {}
_lock = threading.Lock()
# Written by POST /pull/all into the node's spool directory (shared by the API and Celery
# processes): a process that sees a new token re-reads the rules before its next file.
PULL_MARKER = "yara-pull-request"


def request_pull(spool_dir: Path) -> None:
    marker = spool_dir / PULL_MARKER
    temporary = spool_dir / f"{PULL_MARKER}.{secrets.token_hex(6)}"
    temporary.write_text(secrets.token_hex(16))
    temporary.replace(marker)  # atomic: a reader sees the old token or the new one


def pull_requested(rules_dir: Path, pull_marker: Path | None) -> bool:
    if pull_marker is None:
        return False
    try:
        token = pull_marker.read_text()
    except OSError:
        return False  # no pull asked for (or the marker was cleaned away)
    if _pulls_seen.get(rules_dir) == token:
        return False
    _pulls_seen[rules_dir] = token
    return True


def current_ruleset(
    rules_dir: Path, check_interval: float, force: bool = False, pull_marker: Path | None = None
) -> CompiledRuleset:
    """This process's compiled rules for `rules_dir`, refreshed when the directory changed.

    Cheap when nothing changed: a directory listing at most once per `check_interval`.
    `force` (POST /pull/all in the API process), or a new token in `pull_marker` (the same
    request, seen by a Celery process), re-reads the contents at once.
    """
    rules_dir = rules_dir.resolve()
    with _lock:
        cached = _cache.get(rules_dir)
        now = time.monotonic()
        pulled = pull_requested(rules_dir, pull_marker)
        if cached is not None and pulled:
            force = True
        if cached is not None and not force and now - _checked_at.get(rules_dir, 0) < check_interval:
            return cached
        _checked_at[rules_dir] = now
        if cached is not None and not force and fingerprint(rules_dir) == cached.fingerprint:
            return cached
        if cached is not None:
            sources = read_sources(rules_dir)
            if ruleset_digest(sources) == cached.ruleset_id:
                _cache[rules_dir] = dataclasses.replace(cached, fingerprint=fingerprint(rules_dir))
                return _cache[rules_dir]
        compiled = compile_ruleset(rules_dir)
        log.info(
            "YARA ruleset %s: %d rules from %d files compiled in %.2f s",
            compiled.ruleset_id[:12],
            compiled.rule_count,
            len(compiled.files),
            compiled.compile_seconds,
        )
        _cache[rules_dir] = compiled
        return compiled


def sync_status(ruleset: CompiledRuleset, errors_only: bool = False) -> dict[str, Any]:
    """The body of GET /api/tiscale/v2/sync-status."""
    return {
        "revision": ruleset.revision,
        "rulesets": [
            {"revision": item.revision, "key": item.key, "hash": item.hash, "errors": list(item.errors)}
            for item in ruleset.files
            if item.errors or not errors_only
        ],
    }
