"""A scan's results: one record per file, the JSON-lines files they go to, and --resume.

Each line of an --output or --resume file is one JSON object:
`{"path", "size", "mtime_ns", "sha256", "task_url", "state", "verdict", "report" | "error"}`,
`path` absolute, `state` one of done (a report), failed (the Worker could not analyze the
file; `error` says why) or error (it never got that far: refused, connection lost, ...).
`report` is the task's `tc_report` as the chosen report type shapes it.

--resume matches a file to a line by absolute path, size and modification time (to the
nanosecond): a file that is still where it was and has not been touched since is skipped
without being read again, and a file that changed is sent again. Only lines in state `done`
count as finished; failed and errored files are tried again. A line that is not valid JSON
(a run killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cli.files import LocalFile
from cli.verdicts import CLASSIFICATIONS, DONE, Verdict, verdict_of

ResumeKey = tuple[str, int, int]


@dataclass
class FileResult:
    file: LocalFile
    state: str
    sha256: str | None = None
    task_url: str | None = None
    report: Any = None
    error: str | None = None
    verdict: Verdict | None = None
    # Finished in an earlier run, read from the --resume file rather than scanned now.
    resumed: bool = False
    # Its error would be every file's: the scan sends no more (scan.TaskRequestRefused).
    stops_scan: bool = False

    @classmethod
    def from_task(cls, file: LocalFile, sha256: str | None, task_url: str, task: dict[str, Any]):
        if task.get("status") == "failed":
            error = str(task.get("error") or "the Worker could not analyze the file")
            return cls(file, "failed", sha256, task_url, error=error)
        return cls(file, DONE, sha256, task_url, task.get("tc_report"), verdict=verdict_of(task))

    @classmethod
    def from_record(cls, file: LocalFile, record: dict[str, Any]) -> FileResult:
        """A file finished in an earlier run, with the verdict recorded then (the report alone
        may not say it: a report type can leave `classification` out)."""
        report = record.get("report")
        verdict = recorded_verdict(record.get("verdict")) or verdict_of({"tc_report": report})
        return cls(
            file, DONE, record.get("sha256"), record.get("task_url"), report, verdict=verdict, resumed=True
        )

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "path": self.file.abspath,
            "size": self.file.size,
            "mtime_ns": self.file.mtime_ns,
            "sha256": self.sha256,
            "task_url": self.task_url,
            "state": self.state,
        }
        if self.verdict is not None:
            record["verdict"] = {
                "classification": self.verdict.classification_name,
                "threat_name": self.verdict.threat_name,
                "file_type": self.verdict.file_type,
                "children": self.verdict.children,
            }
        if self.state == DONE:
            record["report"] = self.report
        else:
            record["error"] = self.error
        return record


def recorded_verdict(value: Any) -> Verdict | None:
    """The `verdict` of a line written by `FileResult.record`, or None when it is not one."""
    if not isinstance(value, dict) or value.get("classification") not in CLASSIFICATIONS:
        return None
    children = value.get("children")
    return Verdict(
        str(value.get("file_type") or ""),
        CLASSIFICATIONS[value["classification"]],
        str(value.get("threat_name") or ""),
        children if isinstance(children, int) and not isinstance(children, bool) else 0,
    )


def resume_key(file: LocalFile) -> ResumeKey:
    return file.abspath, file.size, file.mtime_ns


def record_key(record: Any) -> ResumeKey | None:
    if not isinstance(record, dict):
        return None
    path, size, mtime = record.get("path"), record.get("size"), record.get("mtime_ns")
    if isinstance(path, str) and isinstance(size, int) and isinstance(mtime, int):
        return path, size, mtime
    return None


@dataclass
class Finished:
    """What a --resume file says was finished: records by file, and lines it could not read."""

    records: dict[ResumeKey, dict[str, Any]]
    unreadable_lines: int = 0


def read_finished(lines: IO[str]) -> Finished:
    finished = Finished({})
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            finished.unreadable_lines += 1
            continue
        key = record_key(record)
        if key is None:
            finished.unreadable_lines += 1
        elif record.get("state") == DONE:
            finished.records[key] = record
    return finished


def load_finished(path: Path) -> Finished:
    """The finished files recorded in `path`; none when it does not exist yet (a first run)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            return read_finished(lines)
    except FileNotFoundError:
        return Finished({})


def same_file(first: Path, second: Path) -> bool:
    if os.path.abspath(first) == os.path.abspath(second):
        return True
    try:
        return first.samefile(second)
    except OSError:
        return False


def ends_mid_line(path: Path) -> bool:
    with path.open("rb") as existing:
        if existing.seek(0, os.SEEK_END) == 0:
            return False
        existing.seek(-1, os.SEEK_END)
        return existing.read(1) != b"\n"


class ResultFiles:
    """Where records go: the --resume file (appended to, so the next run sees this one's
    results too) and the --output file (written afresh); one file when both name it."""

    def __init__(self, output: Path | None, resume: Path | None):
        self.handles: list[IO[str]] = []
        self.paths: list[Path] = []
        if resume is not None:
            self.open(resume, "a")
        if output is not None and not (resume is not None and same_file(output, resume)):
            self.open(output, "w")

    def open(self, path: Path, mode: str) -> None:
        handle = path.open(mode, encoding="utf-8")
        if mode == "a" and ends_mid_line(path):
            handle.write("\n")  # a run killed mid-line: its half line stays alone on its line
        self.handles.append(handle)
        self.paths.append(path)

    def write(self, result: FileResult) -> None:
        """One line per file, flushed at once: a run stopped at any point loses no result."""
        # ASCII only: a path that is not UTF-8 (its bytes kept as lone surrogates) is written
        # escaped ("\\udcff") rather than failing the write, and reads back as the same path.
        line = json.dumps(result.record(), ensure_ascii=True) + "\n"
        for handle in self.handles:
            handle.write(line)
            handle.flush()

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
