"""Peak Python memory of one call, for tests that pin bounded memory on hostile input."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def peak_memory(run: Callable[[], T]) -> tuple[T, int]:
    """Run `run()` and return its result with the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
