"""What the CLI shows: a live Rich progress bar and tables on a terminal, plain lines elsewhere.

Output that is not a terminal (a CI log, a pipe, a file) gets no control codes at all:
one line per finished file, a summary line every SUMMARY_SECONDS, and tables as aligned
plain text, so logs stay readable and greppable. Progress and messages go to stderr and
results (the verdict table, reports) to stdout, so `scanhub ... > out` keeps only results.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from cli.results import FileResult
from cli.verdicts import DONE, ERROR, FAILED

SUMMARY_SECONDS = 10.0
STYLES = {"malicious": "bold red", "suspicious": "yellow", "goodware": "green", ERROR: "red", FAILED: "red"}


def printable(value: Any) -> str:
    """`value` as text safe to print: every character that is not printable written as an
    escape (ESC as `\\x1b`, a newline as `\\n`, a byte of a file name that is not UTF-8 as
    `\\xff`), so that no file name or server message can move the cursor, colour the
    terminal, forge a line, or fail the write. Everything from a file or a service that is
    printed goes through here."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(escape_character(character) for character in text)


def escape_character(character: str) -> str:
    if character.isprintable():
        return character
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return repr(character)[1:-1]  # \x1b, \n, \u202e...


def is_interactive(stream: IO[str]) -> bool:
    """A terminal that can take a live display (not `TERM=dumb`)."""
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def outcome(result: FileResult) -> tuple[str, str]:
    """(classification or state, threat name or error) of one file, for lines and tables."""
    if result.state == DONE and result.verdict is not None:
        return result.verdict.classification_name, result.verdict.threat_name
    return result.state, result.error or ""


def result_line(number: int, total: int, result: FileResult) -> str:
    """`[12/40] path  classification  threat` (or `error  why`): one finished file."""
    label, detail = outcome(result)
    parts = (f"[{number}/{total}] {printable(result.file.path)}", label, printable(detail))
    return "  ".join(part for part in parts if part)


def summary_counts(results: Sequence[FileResult]) -> str:
    """`40 files: 1 malicious, 30 goodware, 2 error`: every label that occurs, worst first."""
    order = ["malicious", "suspicious", "goodware", "unknown", FAILED, ERROR]
    counts = {label: 0 for label in order}
    for result in results:
        counts[outcome(result)[0]] += 1
    parts = [f"{counts[label]} {label}" for label in order if counts[label]]
    resumed = sum(result.resumed for result in results)
    earlier = f" ({resumed} from an earlier run)" if resumed else ""
    return f"{len(results)} files{earlier}: " + (", ".join(parts) if parts else "none")


class PlainProgress:
    """Progress for logs: a line per finished file and a periodic summary, nothing redrawn."""

    def __init__(
        self,
        stream: IO[str] | None,
        total_files: int,
        total_bytes: int,
        every: float = SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream, self.total_files, self.total_bytes = stream, total_files, total_bytes
        self.every, self.clock = every, clock
        self.started = self.last_summary = clock()
        self.done = 0
        self.sent = 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def bytes_sent(self, count: int) -> None:
        self.sent += count

    def finished(self, result: FileResult) -> None:
        self.done += 1
        self.write(result_line(self.done, self.total_files, result))

    def tick(self) -> None:
        """Called every second or so: a summary line once SUMMARY_SECONDS have passed."""
        if self.clock() - self.last_summary >= self.every:
            self.last_summary = self.clock()
            self.write(self.summary())

    def summary(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        return (
            f"-- {self.done}/{self.total_files} files, {human_bytes(self.sent)} of "
            f"{human_bytes(self.total_bytes)} sent, {rate:.1f} files/s, {elapsed:.0f} s"
        )

    def write(self, line: str) -> None:
        """One line; a reader that went away (`| head`) ends the progress lines, not the scan."""
        if self.stream is None:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.stream = None


class LiveProgress:
    """A Rich progress bar on a terminal: files done of total, bytes sent, rate and ETA.
    Files that end flagged or in error are printed above the bar as they finish."""

    def __init__(self, console: Console, total_files: int, total_bytes: int):
        self.total_files, self.done = total_files, 0
        self.progress = Progress(
            TextColumn("[bold]{task.fields[files]}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("scan", total=max(total_bytes, 1), files=self.files_text())

    def files_text(self) -> str:
        return f"{self.done}/{self.total_files} files"

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def bytes_sent(self, count: int) -> None:
        self.progress.advance(self.task, count)

    def finished(self, result: FileResult) -> None:
        self.done += 1
        self.progress.update(self.task, files=self.files_text())
        label, _ = outcome(result)
        if label in ("malicious", "suspicious", ERROR, FAILED):
            line = result_line(self.done, self.total_files, result)
            self.progress.console.print(line, style=STYLES.get(label), markup=False, highlight=False)

    def tick(self) -> None:
        return None


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with spaces, a header line, no box drawing: for logs and pipes."""
    cells = [[printable(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def print_table(
    stream: IO[str],
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    styles: Sequence[str | None] | None = None,
) -> None:
    """A Rich table on a terminal (each row styled by `styles`), plain text otherwise."""
    if not is_interactive(stream):
        if title:
            stream.write(f"{printable(title)}\n")
        stream.write(plain_table(headers, rows) + "\n")
        return
    table = Table(title=Text(printable(title)) if title else None, title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for index, row in enumerate(rows):
        # Text, not str: a cell's brackets (`invoice[draft].pdf`, `[bold]`) are not Rich markup.
        cells = (Text(printable(cell)) for cell in row)
        table.add_row(*cells, style=styles[index] if styles else None)
    Console(file=stream).print(table)


def print_verdicts(stream: IO[str], results: Sequence[FileResult]) -> None:
    """The verdict table of a scan: every file, its type, verdict, threat and children."""
    headers = ["file", "type", "classification", "threat / error", "children"]
    rows, styles = [], []
    for result in results:
        label, detail = outcome(result)
        verdict = result.verdict
        file_type = verdict.file_type if verdict else ""
        children = verdict.children if verdict else ""
        rows.append([result.file.path, file_type, label, detail, children])
        styles.append(STYLES.get(label))
    print_table(stream, headers, rows, styles=styles)
    stream.write(summary_counts(results) + "\n")
