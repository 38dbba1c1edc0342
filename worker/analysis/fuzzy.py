"""Fuzzy hash of a file: TLSH (Trend Micro's py-tlsh, a maintained C++ extension).

TLSH rather than ssdeep: py-tlsh is kept current by its authors and hashes at native
speed, while the Python ssdeep bindings are unmaintained and the pure-Python port is slow.
"""

from __future__ import annotations

import time

import tlsh

from worker.analysis.context import Analyzer, FileContext, Findings

READ_BLOCK = 1024 * 1024
MIN_BYTES = 50  # TLSH needs this much input to say anything


def analyze(context: FileContext) -> Findings:
    hasher = tlsh.Tlsh()
    with context.path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            if time.monotonic() > context.deadline:
                return {}
            hasher.update(block)
    hasher.final()
    value = hasher.hexdigest()
    if not value or value == "TNULL":  # too little variety in the bytes
        return {}
    return {"hashes": [{"name": "tlsh", "value": value}]}


ANALYZER = Analyzer(
    name="fuzzy_hash", version="1", run=analyze, when=lambda context: context.size >= MIN_BYTES
)
