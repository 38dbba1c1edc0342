"""The Hub bench's load generator counts accepted uploads and keeps to its duration."""

from __future__ import annotations

from bench.hub import Run, generate_load, parse_args
from tests.support.fake_worker import REFUSE, FakeWorker


async def test_load_generator_counts_accepted_and_failed_uploads_within_its_duration():
    worker = await FakeWorker().start()
    try:
        run = await generate_load("direct", worker.url, duration=0.3, concurrency=3, content=b"x" * 100)
        assert run.accepted == len(worker.received) > 0
        assert run.failed == 0
        assert 0.3 <= run.seconds < 2
        worker.mode = REFUSE
        refused = await generate_load("direct", worker.url, duration=0.2, concurrency=2, content=b"x")
        assert refused.accepted == 0 and refused.failed > 0
    finally:
        await worker.close()


def test_run_reports_files_per_second_and_percentiles():
    run = Run("via hub", seconds=2.0, accepted=10, latencies=[0.01 * step for step in range(1, 11)])
    assert run.files_per_second == 5.0
    assert run.percentile(0.5) == 0.06
    assert "files/s" in run.line()


def test_bench_needs_both_urls_or_neither():
    import pytest

    with pytest.raises(SystemExit):
        parse_args(["--hub-url", "http://127.0.0.1:8080"])
    assert parse_args([]).duration > 0
