"""External programs some extractors run, and how to find them: one place for the analyzers and `/health`."""

from __future__ import annotations

import shutil

# Program name -> what it is needed for (shown by the Worker's health checks).
EXTERNAL_TOOLS: dict[str, str] = {
    "upx": "unpacking UPX-packed PE and ELF files",
}


def find_tool(name: str) -> str | None:
    """The path of an external program on the PATH, or None when it is not installed."""
    return shutil.which(name)


def tool_checks() -> dict[str, str]:
    """Each external tool's state for `/health`: "ok" or "missing (needed for ...)"."""
    return {
        name: "ok" if find_tool(name) else f"missing (needed for {purpose})"
        for name, purpose in EXTERNAL_TOOLS.items()
    }
