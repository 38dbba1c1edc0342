"""UPX unpacker: recognises UPX-packed PE and ELF files and restores the original with the `upx` tool.

UPX's own decompressor is the only one that knows every version of its formats, so the tool
is run rather than reimplemented. It runs on a copy of the file in a private folder of the
spool, with a timeout and a file-size limit (RLIMIT_FSIZE) no larger than what the extraction
budget still allows; its output becomes the child through `context.extract`. Without the tool
the file is reported packed and not unpacked (`unpack:tool-missing`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from worker.analysis import tools
from worker.analysis.context import RATIO_FLOOR_BYTES, Analyzer, FileContext, Findings, LimitReached, hit

TOOL = "upx"
TIMEOUT_SECONDS = 60.0
PE_SECTION_NAMES = (b"UPX0", b"UPX1", b"UPX2")
# UPX writes its pack header ("UPX!") near the start of the file (ELF: the l_info after the
# program headers; PE: before the first section) and again in the ELF trailer.
MARKER = b"UPX!"
MARKER_WINDOW = 4096
MAX_SECTIONS = 96
# Sets the file-size limit, then becomes the tool (a preexec_fn is unsafe in a threaded worker).
# Python ignores SIGXFSZ, and an ignored signal stays ignored across exec: restore the default.
LIMIT_THEN_EXEC = (
    "import os, resource, signal, sys; size = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (size, size)); "
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL); os.execv(sys.argv[2], sys.argv[2:])"
)


def pe_section_names(head: bytes) -> list[bytes]:
    """Section names from the PE section table, read from the file's first bytes."""
    if len(head) < 64 or not head.startswith(b"MZ"):
        return []
    pe_offset = int.from_bytes(head[0x3C:0x40], "little")
    if head[pe_offset : pe_offset + 4] != b"PE\0\0":
        return []
    count = int.from_bytes(head[pe_offset + 6 : pe_offset + 8], "little")
    optional_size = int.from_bytes(head[pe_offset + 20 : pe_offset + 22], "little")
    table = pe_offset + 24 + optional_size
    names = []
    for number in range(min(count, MAX_SECTIONS)):
        raw = head[table + 40 * number : table + 40 * number + 8]
        if len(raw) < 8:
            break
        names.append(raw.rstrip(b"\0"))
    return names


def upx_markers(context: FileContext) -> list[str]:
    """Why the file looks UPX-packed (empty when it does not)."""
    reasons: list[str] = []
    if context.is_a("PE"):
        sections = [name for name in pe_section_names(context.head) if name in PE_SECTION_NAMES]
        reasons.extend(f"section {name.decode()}" for name in sections)
    if MARKER in context.head[:MARKER_WINDOW]:
        reasons.append("UPX! pack header")
    if context.is_a("ELF") and not reasons and context.size >= 36:
        with context.path.open("rb") as handle:
            handle.seek(context.size - 36)
            if MARKER in handle.read(36):
                reasons.append("UPX! trailer")
    return reasons


def is_upx(context: FileContext) -> bool:
    return bool(upx_markers(context))


def output_cap(context: FileContext) -> tuple[int, str]:
    """The most bytes the unpacked file may have, and which limit sets it."""
    by_ratio = max(RATIO_FLOOR_BYTES, int(context.settings.unpack_max_ratio * max(1, context.size)))
    left = context.budget.bytes_left if context.budget is not None else by_ratio
    return (by_ratio, "ratio") if by_ratio <= left else (max(0, left), "total_bytes")


def unpack(context: FileContext) -> Findings:
    reasons = upx_markers(context)
    heuristic = "pe:upx" if context.is_a("PE") else "elf:upx"
    findings: Findings = {"heuristics": [hit(heuristic, *reasons)]}
    program = tools.find_tool(TOOL)
    if program is None:
        findings["heuristics"].append(hit("unpack:tool-missing", TOOL))
        findings["errors"] = [f"{TOOL} is not installed: the UPX-packed file was not unpacked"]
        findings["story"] = [f"The file is packed with UPX; it was not unpacked because {TOOL} is missing."]
        return findings
    cap, cap_limit = output_cap(context)
    timeout = max(0.1, min(TIMEOUT_SECONDS, context.time_left()))
    folder = Path(tempfile.mkdtemp(prefix="upx-", dir=context.settings.spool_dir))
    try:
        packed, unpacked = folder / "packed", folder / "unpacked"
        shutil.copyfile(context.path, packed)

        command = [program, "-d", "-q", "--no-color", "-o", str(unpacked), str(packed)]
        try:
            result = subprocess.run(
                [sys.executable, "-c", LIMIT_THEN_EXEC, str(cap + 1), *command],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise LimitReached("time", f"{TOOL} did not finish within {timeout:g} s") from error
        if result.returncode == -signal.SIGXFSZ or (unpacked.exists() and unpacked.stat().st_size > cap):
            raise LimitReached(cap_limit, f"{TOOL} output exceeds {cap} bytes")
        if result.returncode != 0 or not unpacked.exists():
            message = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
            detail = message[-1] if message else f"exit status {result.returncode}"
            findings["errors"] = [f"{TOOL} could not unpack the file: {detail}"]
            findings["story"] = ["The file looks packed with UPX but upx could not unpack it (altered?)."]
            return findings
        context.extraction.members += 1
        with unpacked.open("rb") as handle:
            context.extract(f"{context.file_name or 'file'}.unpacked", handle)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    findings["story"] = ["The file is packed with UPX; the unpacked original was analyzed as its child."]
    return findings


ANALYZER = Analyzer(name="upx", version="1", run=unpack, accepts=("PE", "ELF"), when=is_upx, extracts=True)
