"""Logging for every scanhub process: one line per event, the task id on every line about a task.

- `SCANHUB_LOG_LEVEL` (default `INFO`) sets the level. At INFO a Worker logs one line per
  analyzed file (`task 12 done: ...`, from the analysis process); accepting an upload, each
  Celery job's receipt and success are DEBUG.
- `SCANHUB_LOG_FORMAT=json` writes JSON lines: `time`, `level`, `logger`, `message`,
  `task_id` (on lines about a task) and `exception` (a traceback, as one string). The default,
  `text`, writes `time level logger: message`; a traceback stays on the same line, its line
  breaks written as ` | `, so that one event is one line for `grep` and log shippers alike.

Code handling a task runs inside `task_context(task_id)`; every line logged meanwhile carries
that id, in the `task_id` field of JSON lines and, in text lines whose message does not name
it already, as a `[task N]` suffix.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

LEVEL_VARIABLE = "SCANHUB_LOG_LEVEL"
FORMAT_VARIABLE = "SCANHUB_LOG_FORMAT"
FORMATS = ("text", "json")

CURRENT_TASK: contextvars.ContextVar[int | None] = contextvars.ContextVar("scanhub_task_id", default=None)

# Loggers that say per job or per request what the one line per file already says.
CHATTY_AT_INFO = (
    "celery.app.trace",  # "Task scanhub.analyze[...] succeeded in ..."
    "celery.worker.strategy",  # "Task scanhub.analyze[...] received"
)


@contextlib.contextmanager
def task_context(task_id: int) -> Iterator[None]:
    """Lines logged inside carry `task_id`."""
    token = CURRENT_TASK.set(task_id)
    try:
        yield
    finally:
        CURRENT_TASK.reset(token)


class TaskIdFilter(logging.Filter):
    """Sets `record.task_id` from `extra={"task_id": ...}` or else the current task context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None:
            record.task_id = CURRENT_TASK.get()
        return True


def one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " | ")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        task_id = getattr(record, "task_id", None)
        if task_id is not None and not re.search(rf"\btask {task_id}\b", record.getMessage()):
            line = f"{line} [task {task_id}]"
        return one_line(line)

    def formatException(self, ei: Any) -> str:
        return one_line(super().formatException(ei))


def escaped(value: Any) -> Any:
    """A string with what UTF-8 cannot encode written as backslash escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        task_id = getattr(record, "task_id", None)
        if task_id is not None:
            entry["task_id"] = task_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry).decode()
        except TypeError:  # text that is not UTF-8 (a lone surrogate from a file name): escaped
            return orjson.dumps({key: escaped(value) for key, value in entry.items()}).decode()


class LineWriter:
    """A text stream that logs each line written to it: for what a library prints rather
    than logs (Celery prints to `sys.__stdout__`). It has no file descriptor, on purpose:
    what is written to one directly bypasses the log format."""

    def __init__(self, logger: logging.Logger, level: int = logging.INFO):
        self.logger = logger
        self.level = level
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.strip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.log(self.level, self.pending.strip())
        self.pending = ""

    def isatty(self) -> bool:
        return False


def log_format(value: str | None = None) -> str:
    chosen = (value or os.environ.get(FORMAT_VARIABLE) or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"{FORMAT_VARIABLE} must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return chosen


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """One handler on the root logger, to stderr, in the configured format and level
    (arguments win over the environment)."""
    chosen_level = (level or os.environ.get(LEVEL_VARIABLE) or "INFO").strip().upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TaskIdFilter())
    handler.setFormatter(JsonFormatter() if log_format(fmt) == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(chosen_level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
    if root.level >= logging.INFO:
        for name in CHATTY_AT_INFO:
            logging.getLogger(name).setLevel(logging.WARNING)
