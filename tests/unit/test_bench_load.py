"""The bench's load generator: counts refused uploads by status and keeps to its duration."""

from __future__ import annotations

import asyncio

from bench.corpus import generate
from bench.load import LoadResult, run_load
from tests.support.fake_worker import REFUSE, FakeWorker


async def test_refused_uploads_are_counted_by_status_and_the_run_keeps_to_its_duration():
    worker = await FakeWorker().start()
    worker.mode = REFUSE
    try:
        result = await asyncio.wait_for(
            run_load(worker.url, generate("small", 5), duration=0.5, warmup=0.1, concurrency=2), 30
        )
        assert result.accepted == 0
        assert result.errors[503] > 0
        assert result.summary()["errors_by_status"] == {503: result.errors[503]}
    finally:
        await worker.close()


def test_summary_reports_rates_and_latency_percentiles():
    result = LoadResult("http://x", duration=2.0, accepted=10, completed=8)
    result.latencies = [0.01 * step for step in range(1, 11)]
    summary = result.summary()
    assert summary["accepted_per_s"] == 5.0 and summary["completed_per_s"] == 4.0
    assert summary["latency_ms"]["p50"] == 60.0
    assert summary["latency_ms"]["max"] == 100.0
