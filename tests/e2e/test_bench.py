"""`make bench` in its quick mode: every figure the issue asks for is produced and written."""

from __future__ import annotations

import json

from bench.__main__ import main


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
    printed = capsys.readouterr().out
    assert "e2e/eng" in printed and "half load" in printed
