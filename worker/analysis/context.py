"""The analyzer contract: what an analyzer declares, the file it is given, what it returns.

An analyzer is an `Analyzer` descriptor: a `name` and `version`, what it `accepts` (file
types as data, plus an optional `when` predicate for what a type cannot say), an optional
`time_limit`, and `run(context) -> Findings`. The engine routes each file to the analyzers
that accept it, times them, records their failures under their name, and merges their
findings into the file's report entry.

Any analyzer may create child files with `context.extract(name, source)`: each child is
written to the task's spool under a generated name, counted against the task's extraction
budget (children, total bytes, expansion ratio, time), and analyzed like any other file once
its parent is done. An analyzer that does so is an extractor (`extracts=True`): the engine
skips extractors for a file nested deeper than the depth limit.

Time is up when `AnalysisTimeout` is raised (by the Celery task's timers, or by the engine's
own checks). It derives from BaseException so that no analyzer's or library's
`except Exception` can swallow it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypedDict

from worker.settings import WorkerSettings

CLASSIFICATION_CODES = {"unknown": 0, "goodware": 1, "suspicious": 2, "malicious": 3}
CLASSIFICATION_NAMES = {code: name for name, code in CLASSIFICATION_CODES.items()}

BLOCK = 1024 * 1024
# Small children may have any ratio: a 1 MiB file of zeros harms nobody.
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_NAME_CHARS = 1024
# Skipped members listed in a report (a tar of 300k links must not make a 300k-item list);
# the rest are only counted (`skipped_unlisted`).
MAX_SKIPPED_LISTED = 100


class AnalysisTimeout(BaseException):
    """The file's or the task's time is up; ends the analysis rather than one analyzer."""


class HeuristicHit(TypedDict):
    """A reference to a row of the heuristics table, with what triggered it."""

    id: str
    reasons: list[str]


class Findings(TypedDict, total=False):
    """What an analyzer says about a file; the engine merges it into the file's entry.

    - `identity`: refined `file_type` / `file_subtype` (and `description`);
    - `hashes`: extra `{"name", "value"}` items (imphash, tlsh, ...);
    - `metadata`: nested dict merged into the entry's `metadata`;
    - `heuristics`: hits on rows of the heuristics table (indicator, and verdict if any);
    - `indicators`, `scan_results`: direct ones (YARA rules carry their own meta);
    - `interesting_strings`: `{category, values}` items;
    - `tags`, `story` (sentences for the summary), `errors` (non-fatal trouble).
    """

    identity: dict[str, str]
    hashes: list[dict[str, str]]
    metadata: dict[str, Any]
    heuristics: list[HeuristicHit]
    indicators: list[dict[str, Any]]
    interesting_strings: list[dict[str, Any]]
    scan_results: list[dict[str, Any]]
    tags: list[str]
    story: list[str]
    errors: list[str]


def hit(heuristic_id: str, *reasons: str) -> HeuristicHit:
    return {"id": heuristic_id, "reasons": [str(reason) for reason in reasons]}


class LimitReached(Exception):
    """A limit of the task's extraction budget stopped an extraction; `limit` names it."""

    def __init__(self, limit: str, detail: str):
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


@dataclass
class Budget:
    """What one task may still extract, shared by all its files at every level."""

    children_left: int
    bytes_left: int

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Budget:
        return cls(settings.unpack_max_children, settings.unpack_max_total_bytes)


@dataclass
class Child:
    path: Path  # generated spool name
    file_path: str  # name inside the container, as reported
    size: int
    relationship: str = "container"


@dataclass
class ExtractionLog:
    """What the extractors of one file did: the source of the report's `metadata.archive`."""

    format: str = ""
    members: int = 0
    children: list[Child] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_unlisted: int = 0
    limits: list[dict[str, str]] = field(default_factory=list)
    password_source: str | None = None
    # Children being written: dropped by `discard` if an interruption leaves them half written.
    writing: list[ChildWriter] = field(default_factory=list)

    @property
    def used(self) -> bool:
        return bool(self.format or self.children or self.skipped or self.limits)

    def progress(self) -> tuple[int, int, int, int]:
        """What an extractor changed: compared before and after it runs."""
        skipped = len(self.skipped) + self.skipped_unlisted
        return (len(self.children), skipped, len(self.limits), self.members)

    def discard(self) -> None:
        """Remove every child file of this container: analyzed, not yet analyzed (a limit or
        a timeout interrupted the walk) or half written."""
        for writer in list(self.writing):
            writer.drop()
        for child in self.children:
            child.path.unlink(missing_ok=True)


Source = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]


def display_name(name: str) -> str:
    return name.replace("\0", "")[:MAX_NAME_CHARS]


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
    budget: Budget | None = None
    extraction: ExtractionLog = field(default_factory=ExtractionLog)
    tags: set[str] = field(default_factory=set)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def check_time(self, doing: str = "analysis") -> None:
        """Raise LimitReached("time") once this file's (or this analyzer's) time is up."""
        if time.monotonic() > self.deadline:
            seconds = self.settings.analysis_file_time_limit_seconds
            raise LimitReached("time", f"{doing} exceeded the time limit ({seconds:g} s per file)")

    def is_a(self, file_type: str, *subtypes: str) -> bool:
        if self.identity.get("file_type") != file_type:
            return False
        return not subtypes or self.identity.get("file_subtype") in subtypes

    def read_head(self, size: int) -> bytes:
        """The first `size` bytes (from memory when the head already holds them)."""
        if size <= len(self.head) or len(self.head) >= self.size:
            return self.head[:size]
        with self.path.open("rb") as handle:
            return handle.read(size)

    def passwords(self) -> list[tuple[bytes, str]]:
        """Passwords to try on an encrypted container: the submitter's, then the node's.

        At most `password_list_max` of them; extractors check the time between attempts.
        """
        given = self.user_data.get("password_list") if isinstance(self.user_data, dict) else None
        candidates: list[tuple[bytes, str]] = []
        for password in given if isinstance(given, list) else []:
            candidates.append((str(password).encode("utf-8"), "user_data.password_list"))
        for password in self.settings.default_password_list:
            candidates.append((password.encode("utf-8"), "default_password_list"))
        return candidates[: self.settings.password_list_max]

    def skip(self, name: str, reason: str) -> None:
        """Record a member that is reported but not extracted (a link, a wrong password...)."""
        if len(self.extraction.skipped) < MAX_SKIPPED_LISTED:
            self.extraction.skipped.append({"file_path": display_name(name), "reason": reason})
        else:
            self.extraction.skipped_unlisted += 1

    def extract(
        self,
        name: str,
        source: Source,
        packed_size: int | None = None,
        relationship: str = "container",
    ) -> Child | None:
        """Write one child through the task's extraction budget; it is analyzed after this file.

        `name` is only reported (the file is written under a generated name in the spool);
        `source` is bytes, a binary file object, or an iterable of byte blocks, read one block
        at a time; `packed_size` is what the child occupies in this file, for the expansion
        ratio (the whole file when not given). A child over the ratio is dropped and the
        limit recorded (None is returned); running out of children, bytes or time raises
        LimitReached, which ends this extractor with the limit recorded.
        """
        writer = self.child_writer(name, packed_size)
        try:
            for block in blocks(source):
                writer.write(block)
        except LimitReached as limit:
            writer.drop()
            if limit.limit != "ratio":
                raise
            self.extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
            return None
        except BaseException:
            writer.drop()
            raise
        return writer.keep(relationship)

    def child_writer(self, name: str, packed_size: int | None = None) -> ChildWriter:
        """A writer for one child, for libraries that push data rather than being read from."""
        if self.budget is None:
            raise RuntimeError("this context has no extraction budget")
        if self.budget.children_left <= 0:
            limit = self.settings.unpack_max_children
            raise LimitReached("children", f"more than {limit} files unpacked in this task")
        self.check_time(f"unpacking before {display_name(name)}")
        self.budget.children_left -= 1
        return ChildWriter(self, self.budget, name, self.size if packed_size is None else packed_size)


class ChildWriter:
    """Writes one child to a fresh spool file, enforcing the byte, ratio and time limits."""

    def __init__(self, context: FileContext, budget: Budget, name: str, packed: int):
        settings = context.settings
        self.context, self.budget = context, budget
        self.name = display_name(name)
        self.max_bytes = max(RATIO_FLOOR_BYTES, int(settings.unpack_max_ratio * max(1, packed)))
        self.path = settings.spool_dir / f"unpack-{secrets.token_hex(8)}-{len(context.extraction.children)}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle: IO[bytes] = os.fdopen(fd, "wb")
        self.written = 0
        context.extraction.writing.append(self)

    def write(self, block: bytes | bytearray | memoryview) -> None:
        budget, settings = self.budget, self.context.settings
        size = len(block)
        self.written += size
        budget.bytes_left -= size
        if budget.bytes_left < 0:
            limit = settings.unpack_max_total_bytes
            raise LimitReached("total_bytes", f"{self.name}: more than {limit} bytes expanded in this task")
        if self.written > self.max_bytes:
            ratio = settings.unpack_max_ratio
            raise LimitReached("ratio", f"{self.name}: expands more than {ratio:g} times its packed size")
        self.context.check_time(f"unpacking {self.name}")
        self.handle.write(block)

    def keep(self, relationship: str = "container") -> Child:
        self.handle.close()
        child = Child(self.path, self.name, self.written, relationship)
        self._done()
        self.context.extraction.children.append(child)
        return child

    def drop(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.path.unlink(missing_ok=True)
        self._done()

    def _done(self) -> None:
        writing = self.context.extraction.writing
        if self in writing:
            writing.remove(self)


def blocks(source: Source) -> Iterable[bytes | bytearray | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), BLOCK):
            yield view[start : start + BLOCK]
        return
    read = getattr(source, "read", None)
    if read is not None:
        while block := read(BLOCK):
            yield block
        return
    yield from source


Accept = Callable[[FileContext], bool]


@dataclass(frozen=True)
class Analyzer:
    """One analyzer, declared: what it is, what it accepts, how long it may take, what it runs.

    `accepts` lists file types (`"PE"`) and type/subtype pairs (`"Archive/ZIP"`); empty means
    every file. `when`, if given, must also hold (for what the type cannot say, such as
    "a ZIP whose members are OOXML parts"). `time_limit` (seconds) narrows the file's deadline
    while this analyzer runs; extract() and the YARA scan honour it.
    """

    name: str
    version: str
    run: Callable[[FileContext], Findings]
    accepts: tuple[str, ...] = ()
    when: Accept | None = None
    time_limit: float | None = None
    extracts: bool = False

    def wants(self, context: FileContext) -> bool:
        if self.accepts:
            file_type = context.identity.get("file_type", "")
            pair = f"{file_type}/{context.identity.get('file_subtype', '')}"
            if file_type not in self.accepts and pair not in self.accepts:
                return False
        return self.when is None or self.when(context)


def child_name(file_path: str) -> str:
    """The reported file name of a child: the last part of its path in the container."""
    normalized = file_path.replace("\\", "/")
    return PurePosixPath(normalized).name or file_path


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


@dataclass
class Submission:
    """One file to analyze, with what the upload already learned about it."""

    path: Path
    file_name: str = ""
    digests: dict[str, str] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    # The node's settings; None: read from the environment once per process.
    settings: WorkerSettings | None = None
