"""Installer and compiled-script extractor (binary-refinery): NSIS, Inno Setup, InstallShield, AutoIt.

These formats have one maintained pure-Python extractor, binary-refinery (`xtnsis`, `xtinno`,
`xtiss`, `a3x`). Its extractors need the whole file and each member in memory, so they run in
a child process (`refinery_child.py`) under an address-space limit, a CPU-time limit and no
right to write files; the members it streams back are written here through the extraction
budget, which stops the child as soon as a limit is reached. The format is recognised by its
markers anywhere in the file (installer data sits in the overlay, an AutoIt script in a
resource), and tagged (`installer:nsis`, `installer:inno`, `installer:installshield`,
`autoit`), so `pe_payloads` leaves the overlay to this extractor.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, cast

from worker.analysis.context import Analyzer, ChildWriter, FileContext, Findings, LimitReached

# The whole file is read into the child's memory: larger files are refused.
MAX_INPUT_BYTES = 256 * 1024 * 1024
MEMORY_BASE_BYTES = 768 * 1024 * 1024
MEMORY_PER_INPUT_BYTE = 4
SCAN_BLOCK = 4 * 1024 * 1024
SCAN_OVERLAP = 64
MAX_FRAME_BYTES = 16 * 1024 * 1024
CHILD = "worker.analysis.extractors.refinery_child"


@dataclass(frozen=True)
class Kind:
    """One format: its name, the refinery unit that unpacks it, its tag, and its byte markers."""

    name: str
    unit: str
    tag: str
    title: str
    markers: tuple[bytes, ...]


AUTOIT_SCRIPT_MAGIC = bytes.fromhex("A3484BBE986C4AA9994C530A86D6487D")
KINDS = (
    Kind(
        "nsis",
        "xtnsis",
        "installer:nsis",
        "an NSIS installer",
        (
            b"\xef\xbe\xad\xdeNullsoftInst",
            b"\xef\xbe\xad\xdeNullSoftInst",
            b"\xed\xbe\xad\xdeNullSoftInst",
            b"\xef\xbe\xad\xdensisinstall\0",
        ),
    ),
    Kind(
        "inno",
        "xtinno",
        "installer:inno",
        "an Inno Setup installer",
        (b"Inno Setup Setup Data (", b"InnoSetupLdrWindow"),
    ),
    Kind(
        "installshield",
        "xtiss",
        "installer:installshield",
        "an InstallShield installer",
        (b"InstallShield\0", b"ISSetupStream\0"),
    ),
    Kind(
        "autoit",
        "a3x",
        "autoit",
        "a compiled AutoIt script",
        (AUTOIT_SCRIPT_MAGIC, b"AU3!EA06", b"AU3!EA05"),
    ),
)
MARKERS = re.compile(b"|".join(re.escape(marker) for kind in KINDS for marker in kind.markers))
BY_MARKER = {marker: kind for kind in KINDS for marker in kind.markers}


# The last file scanned and what it held: `when` and `run` ask about the same file in turn.
last_scan: dict[tuple[str, int, int], Kind | None] = {}


def detect(context: FileContext) -> Kind | None:
    """The installer format found in the file, by precedence (NSIS, Inno, InstallShield, AutoIt)."""
    key = (str(context.path), context.size, context.path.stat().st_mtime_ns)
    if key not in last_scan:
        last_scan.clear()
        last_scan[key] = scan(context)
    return last_scan[key]


def scan(context: FileContext) -> Kind | None:
    found: set[str] = set()
    with context.path.open("rb") as handle:
        position, tail = 0, b""
        while position < min(context.size, MAX_INPUT_BYTES):
            block = handle.read(SCAN_BLOCK)
            if not block:
                break
            for match in MARKERS.finditer(tail + block):
                found.add(BY_MARKER[match.group()].name)
            tail = block[-SCAN_OVERLAP:]
            position += len(block)
    if "installshield" in found and not context.head.startswith(b"MZ"):
        found.discard("installshield")
    return next((kind for kind in KINDS if kind.name in found), None)


def is_installer(context: FileContext) -> bool:
    return detect(context) is not None


def read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the unpacker process ended in the middle of a frame")
    return data


def read_field(stream: IO[bytes]) -> bytes:
    (size,) = struct.unpack(">I", read_exactly(stream, 4))
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"unpacker frame of {size} bytes")
    return read_exactly(stream, size)


def receive(context: FileContext, stream: IO[bytes]) -> list[str]:
    """Write the members the child streams through the budget; returns error messages."""
    errors: list[str] = []
    writer: ChildWriter | None = None
    dropped = False  # the current member went over the ratio limit: its data is discarded
    try:
        while kind := stream.read(1):
            if kind == b"N":
                name = read_field(stream).decode("utf-8", "replace")
                context.extraction.members += 1
                writer, dropped = context.child_writer(name), False
            elif kind == b"D":
                block = read_field(stream)
                if writer is not None and not dropped:
                    try:
                        writer.write(block)
                    except LimitReached as limit:
                        if limit.limit != "ratio":
                            raise
                        writer.drop()
                        context.extraction.limits.append({"limit": limit.limit, "detail": limit.detail})
                        dropped = True
            elif kind == b"E":
                if writer is not None and not dropped:
                    writer.keep()
                writer = None
            elif kind == b"S":
                name, reason = (
                    field.decode("utf-8", "replace") for field in (read_field(stream), read_field(stream))
                )
                context.skip(name, reason)
            elif kind == b"!":
                errors.append(read_field(stream).decode("utf-8", "replace"))
            else:
                raise ValueError(f"unexpected unpacker frame {kind!r}")
    finally:
        if writer is not None and not writer.handle.closed:
            writer.drop()
    return errors


def extract(context: FileContext) -> Findings:
    kind = detect(context)
    if kind is None:
        return {}
    findings: Findings = {"tags": [kind.tag], "story": [f"The file is {kind.title}."]}
    if context.size > MAX_INPUT_BYTES:
        findings["errors"] = [f"{kind.name}: not unpacked, larger than {MAX_INPUT_BYTES} bytes"]
        return findings
    seconds = max(0.5, context.time_left())
    members_before = context.extraction.members
    memory = MEMORY_BASE_BYTES + MEMORY_PER_INPUT_BYTE * context.size
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cpu_seconds = str(int(seconds) + 1)
    process = subprocess.Popen(
        [sys.executable, "-m", CHILD, kind.unit, str(context.path), str(memory), cpu_seconds],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(seconds, expire)
    timer.start()
    try:
        errors = receive(context, cast(IO[bytes], process.stdout))  # a pipe: stdout=PIPE above
    except (EOFError, ValueError) as error:
        errors = [str(error)]
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    if expired.is_set() or process.returncode == -signal.SIGXCPU:
        raise LimitReached("time", f"{kind.name} unpacking did not finish within {seconds:g} s")
    if process.returncode not in (0, 1) and not errors:
        errors = [f"the unpacker process ended with status {process.returncode}"]
    if not errors and context.extraction.members == members_before:
        errors = ["nothing could be unpacked (truncated or damaged?)"]
    if errors:
        findings["errors"] = [f"{kind.name}: {error}" for error in errors]
    return findings


ANALYZER = Analyzer(
    name="installer",
    version="1",
    run=extract,
    accepts=("PE", "Binary/AutoIt"),
    when=is_installer,
    extracts=True,
)
