"""The bench's targets: each figure against its limit, in the right direction, and unmeasured ones said so."""

from __future__ import annotations

from bench.__main__ import targets


def by_name(results) -> dict:
    return {target["name"]: target for target in targets(results)}


def test_lower_is_better_and_higher_is_better_targets_are_judged_each_their_way():
    results = {
        "corpora": {},
        "ratios": {"small": {"e2e_over_engine": 0.5, "hub_over_direct": 0.95}},
        "engine_per_file": {"100 KB": {"cpu_ms_per_file": 4.0}, "4 KB": {"cpu_ms_per_file": 3.0}},
        "machinery": {"api_cpu_ms_per_upload": 2.5, "api_cpu_ms_per_pending_poll": 0.2},
    }
    judged = by_name(results)
    assert (
        judged["engine CPU per 100 KB text/script file (ms)"] | {"met": True, "ratio": 0.8}
        == judged["engine CPU per 100 KB text/script file (ms)"]
    )
    assert judged["engine CPU per 4 KB text/script file (ms)"]["met"] is False
    assert judged["engine CPU per 4 KB text/script file (ms)"]["ratio"] == 1.5
    assert judged["small: completed through the Hub / engine"]["met"] is False
    assert judged["small: Hub / direct"]["met"] is True
    assert judged["Worker API CPU per small upload (ms)"]["met"] is False
    assert judged["Worker API CPU per poll of a pending task (ms)"]["met"] is True


def test_a_figure_this_run_did_not_measure_is_neither_met_nor_missed():
    judged = by_name({"corpora": {}})
    assert judged["Celery RSS growth over the soak (MB)"] == {
        "name": "Celery RSS growth over the soak (MB)",
        "value": None,
        "limit": 20,
        "relation": "<",
        "ratio": None,
        "met": None,
    }
    assert "RSS growth of any process in any run (MB)" not in judged
