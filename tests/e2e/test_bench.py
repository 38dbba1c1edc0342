"""`make bench` in its quick mode: every figure the bench reports is produced and written."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main

# Its figures come from load runs of two seconds: with no other test beside it, so a busy
# machine does not leave a run with no completed task.
pytestmark = pytest.mark.alone


def test_quick_bench_measures_engine_hub_and_direct_for_every_corpus_and_writes_json(tmp_path, capsys):
    output = tmp_path / "results.json"
    results = main(["--quick", "--output", str(output)])
    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    for kind in ("small", "medium", "large", "mixed"):
        figures = results["corpora"][kind]
        assert figures["engine"]["files_per_second"] > 0
        for label in ("hub", "direct"):
            assert figures[label]["completed_per_s"] > 0, (kind, label, figures[label])
            assert figures[label]["errors_by_status"] == {}
            assert figures[label]["latency_ms"]["p99"] is not None
            assert {"hub", "worker1-api", "worker1-celery"} <= set(figures[label]["rss"])
        assert results["ratios"][kind]["e2e_over_engine"] > 0
    assert results["half_load_small"]["latency_ms"]["p99"] is not None
    # Without polls: every completion counted came from a task's callback.
    assert results["callbacks_small"]["completed_per_s"] > 0
    assert results["callbacks_small"]["errors_by_status"] == {}
    for label in ("4 KB", "100 KB"):
        per_file = results["engine_per_file"][label]
        assert per_file["cpu_ms_per_file"] > 0 and {"yara", "strings"} <= set(per_file["split_ms"])
    machinery = results["machinery"]
    # Celery was held while the tasks were polled: every poll saw a pending task.
    assert machinery["polls_answered_pending"] == machinery["polls"]
    for key in (
        "api_cpu_ms_per_upload",
        "api_cpu_ms_per_pending_poll",
        "celery_cpu_ms_per_job",
        "bare_aiohttp_cpu_ms_per_request",
    ):
        assert machinery[key] > 0, key
    measured = {target["name"]: target for target in results["targets"]}
    assert measured["Worker API CPU per small upload (ms)"]["value"] == machinery["api_cpu_ms_per_upload"]
    assert measured["small: Hub / direct"]["ratio"] is not None
    assert measured["Celery RSS growth over the soak (MB)"]["met"] is None  # no soak in this run
    printed = capsys.readouterr().out
    assert "e2e/eng" in printed and "half load" in printed and "per pending poll" in printed
    assert "targets (value, limit, value/limit)" in printed
