"""Child process that runs one binary-refinery extractor on a file and streams its members to stdout.

Run as `python -m worker.analysis.extractors.refinery_child UNIT PATH MEMORY SECONDS` by
`installers.py`; it first limits its own address space and CPU time and forbids itself to
write files. Refinery's extractors hold the
whole input and each member in memory; a hostile installer can only exhaust this process.

Frames on stdout (lengths big-endian u32): `N` name, then `D` data blocks, then `E` (one
member); `S` name and reason (a member refinery could not produce); `!` message (fatal).
"""

from __future__ import annotations

import importlib
import resource
import struct
import sys
from typing import IO, Any

# Unit name -> (module, class): the only units this process runs.
UNITS = {
    "xtnsis": ("refinery.units.formats.archive.xtnsis", "xtnsis"),
    "xtinno": ("refinery.units.formats.archive.xtinno", "xtinno"),
    "xtiss": ("refinery.units.formats.archive.xtiss", "xtiss"),
    "a3x": ("refinery.units.formats.a3x", "a3x"),
}
BLOCK = 1024 * 1024
SCRIPT_SUFFIXES = (".au3", ".ahk")


def frame(out: IO[bytes], kind: bytes, *fields: bytes) -> None:
    out.write(kind + b"".join(struct.pack(">I", len(field)) + field for field in fields))


def member_name(result: Any) -> str:
    """The member's name: refinery's path, or for an AutoIt FileInstall record its source path."""
    path = str(result.path)
    source = result.meta.get("srcpath")
    if source and not path.lower().endswith(SCRIPT_SUFFIXES):
        return str(source)
    return path


def limit_self(memory: int, seconds: int) -> None:
    """Address space, CPU time, and no file writes, before any input is read."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def main(unit_name: str, path: str, memory: int, seconds: int) -> int:
    out = sys.stdout.buffer
    try:
        limit_self(memory, seconds)
        module_name, class_name = UNITS[unit_name]
        unit = getattr(importlib.import_module(module_name), class_name)()
        with open(path, "rb") as handle:
            data = bytearray(handle.read())
        for result in unit.unpack(data):
            name = member_name(result).encode("utf-8", "replace")
            try:
                content = memoryview(result.get_data())
            except Exception as error:  # one broken member: report it, go on with the rest
                frame(out, b"S", name, f"{type(error).__name__}: {error}".encode())
                continue
            finally:
                result.release()
            frame(out, b"N", name)
            for start in range(0, len(content), BLOCK):
                frame(out, b"D", content[start : start + BLOCK].tobytes())
            out.write(b"E")
            out.flush()
    except MemoryError:
        frame(out, b"!", b"MemoryError: over the unpacker's memory limit")
        return 1
    except Exception as error:
        frame(out, b"!", f"{type(error).__name__}: {error}".encode("utf-8", "replace"))
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
