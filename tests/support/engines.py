"""Engines for tests, plugged in through SCANHUB_ENGINE: the real engine plus test behaviours.

A file starting with `CRASH` makes the analysis raise; one starting with `SLEEP:<seconds>`
makes it take that long first;
one starting with `STUBBORN` ignores the soft time limit.
Everything else goes through the real engine unchanged.
"""

from __future__ import annotations

import time

from worker.analysis.engine import AnalysisTimeout, Submission, analyze_file


def with_markers(submission: Submission):
    with submission.path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(b"CRASH"):
        raise RuntimeError("crash requested by the test file")
    if head.startswith(b"SLEEP:"):
        time.sleep(float(head[6:].split()[0]))
    if head.startswith(b"STUBBORN"):
        # Ignores the soft time limit, as code stuck in a C library would: only the hard
        # limit (the process is killed) ends it.
        while True:
            try:
                time.sleep(60)
            except AnalysisTimeout:
                continue
    return analyze_file(submission)
