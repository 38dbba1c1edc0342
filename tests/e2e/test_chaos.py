"""The chaos suite's short mode: faults under load lose no accepted task, and each recovers."""

from __future__ import annotations

import math

from bench import chaos


def test_short_chaos_run_loses_nothing_and_recovers_from_every_fault():
    results = chaos.run(chaos.SHORT, rate=5, settle=3)
    chaos.print_table(results)
    assert [row.fault for row in results] == list(chaos.SHORT)
    for row in results:
        assert row.accepted > 0, row
        assert row.lost == 0, row
        assert row.done + row.failed == row.accepted, row
        assert math.isfinite(row.recover_seconds), row
