"""The analyze job's plain function: outcomes, file deletion, and guards, over fakeredis."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from worker.analysis.engine import Submission
from worker.settings import WorkerSettings
from worker.store import Keys, SyncTaskStore, encode_fields
from worker.tasks import run_analysis


def crashing_engine(submission: Submission):
    raise RuntimeError("parser exploded")


@pytest.fixture
def setup(tmp_path: Path):
    settings = WorkerSettings(spool_dir=tmp_path, max_analysis_attempts=2)
    client = fakeredis.FakeRedis(decode_responses=True)
    store = SyncTaskStore(client, Keys(), settings.retention())

    def queue(task_id: int, content: bytes, **fields) -> Path:
        digests = {
            name: hashlib.new(name, content).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")
        }
        record = {"task_id": task_id, "submitted": int(time.time()), "status": "queued", "attempts": 0}
        encoded: dict[Any, Any] = encode_fields({**record, "file_name": "a.txt", **digests, **fields})
        client.hset(Keys().task(task_id), mapping=encoded)
        client.zadd(Keys().queued_tasks, {str(task_id): time.time()})
        path = tmp_path / str(task_id)
        path.write_bytes(content)
        return path

    return settings, client, store, queue


def test_analysis_stores_report_with_hashes_and_deletes_the_file(setup):
    settings, client, store, queue = setup
    path = queue(1, b"hello world\n")
    assert run_analysis(1, store, settings) == "done"
    record = store.get(1)
    assert record["status"] == "done"
    report = orjson.loads(record["tc_report"])
    assert isinstance(report, list)
    entry = report[0]
    hashes = {item["name"]: item["value"] for item in entry["info"]["file"]["hashes"]}
    assert hashes["sha256"] == hashlib.sha256(b"hello world\n").hexdigest()
    assert entry["info"]["file"]["size"] == 12
    assert entry["info"]["file"]["file_type"] == "Text"
    assert 0 < entry["info"]["file"]["entropy"] < 8
    assert not path.exists()
    assert client.zcard(Keys().queued_tasks) == 0
    assert 0 < client.ttl(Keys().task(1)) <= settings.task_age_limit_seconds


def test_engine_crash_fails_that_task_with_error_and_deletes_the_file(setup):
    settings, _, store, queue = setup
    settings = settings.model_copy(update={"engine": "tests.unit.test_analysis_task:crashing_engine"})
    path = queue(1, b"x")
    assert run_analysis(1, store, settings) == "failed"
    record = store.get(1)
    assert record["status"] == "failed"
    assert "parser exploded" in record["error"]
    assert record["processed"]
    assert not path.exists()


def test_deleted_task_is_skipped_and_its_file_removed(setup):
    settings, client, store, queue = setup
    path = queue(1, b"x")
    client.delete(Keys().task(1))
    assert run_analysis(1, store, settings) == "skipped"
    assert not path.exists()
    assert store.get(1) is None  # never recreated by a late write


def test_canceled_task_is_not_analyzed_again(setup):
    settings, client, store, queue = setup
    queue(1, b"x")
    client.hset(Keys().task(1), "status", "failed")
    assert run_analysis(1, store, settings) == "skipped"
    assert store.get(1)["status"] == "failed"


def test_task_redelivered_too_often_fails_instead_of_looping(setup):
    settings, client, store, queue = setup
    path = queue(1, b"x")
    client.hset(Keys().task(1), mapping={"status": "analyzing", "attempts": 2})
    assert run_analysis(1, store, settings) == "failed"
    assert "attempts" in store.get(1)["error"]
    assert not path.exists()


def slow_on_marker(submission: Submission):
    if submission.path.read_bytes().startswith(b"SLOW"):
        time.sleep(5)
    return (
        crashing_engine(submission)
        if submission.path.read_bytes().startswith(b"CRASH")
        else _real(submission)
    )


def _real(submission: Submission):
    from worker.analysis.engine import analyze_file

    return analyze_file(submission)


def test_batch_job_isolates_each_file_failure_and_time_limit(setup, monkeypatch):
    from worker import tasks

    settings, _, store, queue = setup
    settings = settings.model_copy(
        update={
            "engine": "tests.unit.test_analysis_task:slow_on_marker",
            "analysis_soft_time_limit_seconds": 0.3,
        }
    )
    context = tasks.ProcessContext(settings, store)
    paths = [queue(1, b"fine"), queue(2, b"CRASH"), queue(3, b"SLOW"), queue(4, b"also fine")]
    outcomes = tasks.analyze_batch(context, [1, 2, 3, 4])
    assert outcomes == ["done", "failed", "failed", "done"]
    assert "parser exploded" in store.get(2)["error"]
    assert "time limit" in store.get(3)["error"]
    assert not any(path.exists() for path in paths)


def test_redelivered_batch_skips_files_already_done(setup, monkeypatch):
    from worker import tasks

    settings, _, store, queue = setup
    context = tasks.ProcessContext(settings, store)
    queue(1, b"one")
    queue(2, b"two")
    assert tasks.analyze_batch(context, [1]) == ["done"]
    assert tasks.analyze_batch(context, [1, 2]) == ["skipped", "done"]


def swallowing_engine(submission: Submission):
    """An analyzer hit by the time limit inside the engine's `except Exception` guards."""
    from worker.analysis import engine, registry
    from worker.analysis.context import AnalysisTimeout, Analyzer

    def slow(context):
        raise AnalysisTimeout("soft limit")

    return engine.analyze_file(submission, (Analyzer("slow", "1", slow), *registry.ANALYZERS))


def test_a_time_limit_inside_an_analyzer_fails_the_task_instead_of_being_recorded(setup):
    settings, _, store, queue = setup
    settings = settings.model_copy(update={"engine": "tests.unit.test_analysis_task:swallowing_engine"})
    path = queue(1, b"x")
    assert run_analysis(1, store, settings) == "failed"
    assert "time limit" in store.get(1)["error"]
    assert not path.exists()


def test_an_error_while_storing_the_report_still_ends_the_task(setup, monkeypatch):
    settings, _, store, queue = setup
    queue(1, b"x")

    def broken_finish(*args, **kwargs):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(store, "finish", broken_finish)
    assert run_analysis(1, store, settings) == "failed"
    record = store.get(1)
    assert record["status"] == "failed"
    assert "Redis went away" in record["error"]


def test_celerys_soft_time_limit_signal_raises_the_engines_analysis_timeout_once_mapped():
    import os
    import signal

    from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler

    from worker import tasks
    from worker.analysis.context import AnalysisTimeout

    previous = signal.signal(SIG_SOFT_TIMEOUT, soft_timeout_sighandler)  # as a pool process has it
    try:
        tasks.map_soft_time_limit()
        assert signal.getsignal(SIG_SOFT_TIMEOUT) is tasks.raise_analysis_timeout
        with pytest.raises(AnalysisTimeout):
            os.kill(os.getpid(), SIG_SOFT_TIMEOUT)
            signal.sigtimedwait([], 0)  # let the handler run before leaving the block
    finally:
        signal.signal(SIG_SOFT_TIMEOUT, previous)


def test_a_per_file_timer_in_a_batch_fails_that_file_with_a_time_limit_reason(setup, monkeypatch):
    from worker import tasks

    settings, _, store, queue = setup
    settings = settings.model_copy(
        update={
            "engine": "tests.support.engines:with_markers",
            "analysis_soft_time_limit_seconds": 0.2,
        }
    )
    context = tasks.ProcessContext(settings, store)
    queue(1, b"SLEEP:5")
    queue(2, b"quick")
    assert tasks.analyze_batch(context, [1, 2]) == ["failed", "done"]
    assert "time limit" in store.get(1)["error"]


def test_a_failure_after_the_task_is_done_leaves_it_done_and_its_file_deleted(setup):
    settings, client, store, queue = setup
    path = queue(1, b"done, then the broker fails\n", user_data='{"callback": {"url": "https://h.example"}}')

    def broker_down(task_id: int, output: str, countdown: float) -> None:
        raise ConnectionError("broker unreachable")

    assert run_analysis(1, store, settings, send_delivery=broker_down) == "done"
    record = store.get(1)
    assert record["status"] == "done" and "error" not in record
    assert orjson.loads(record["tc_report"])
    assert client.hgetall(Keys().outcomes) == {"done": "1"}
    assert not path.exists()


class CountingPipelines:
    """Counts the pipelines a client executes (each is one round trip to Redis)."""

    def __init__(self, client):
        self.client, self.executed = client, 0

    def pipeline(self, *args, **kwargs):
        pipe = self.client.pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted(*a, **k):
            self.executed += 1
            return execute(*a, **k)

        pipe.execute = counted
        return pipe

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_the_report_statistics_index_and_cache_entry_are_written_in_one_round_trip(setup):
    from worker import result_cache

    settings, client, store, queue = setup
    settings = settings.model_copy(update={"cache_seconds": 60})
    content = b"one round trip\n"
    queue(1, content)
    counting = CountingPipelines(client)
    store.redis = counting
    assert run_analysis(1, store, settings) == "done"
    assert counting.executed == 1
    assert float(client.hget(Keys().analyzer_stats, "identify:runs")) == 1
    sha256 = hashlib.sha256(content).hexdigest()
    assert client.zscore(Keys().sample(sha256), "1") is not None
    record = store.get(1)
    key = result_cache.cache_key(settings, record, {})
    assert key is not None and client.get(Keys().cached_result(key)) == "1"


def test_a_server_that_lost_the_scripts_still_gets_the_report_and_its_bookkeeping(setup):
    settings, client, store, queue = setup
    queue(1, b"scripts flushed\n")
    real_start = store.start

    def start_then_flush(*args, **kwargs):
        started = real_start(*args, **kwargs)
        client.script_flush()  # as a Redis restart without its scripts would
        return started

    store.start = start_then_flush
    assert run_analysis(1, store, settings) == "done"
    assert store.get(1)["status"] == "done"
    assert float(client.hget(Keys().analyzer_stats, "identify:runs")) == 1  # counted once


def test_a_failed_bookkeeping_write_is_logged_and_the_task_is_still_done(setup, caplog):
    settings, client, store, queue = setup
    client.set(Keys().analyzer_stats, "not a hash")  # every HINCRBYFLOAT on it fails
    queue(1, b"statistics cannot be written\n")
    assert run_analysis(1, store, settings) == "done"
    assert store.get(1)["status"] == "done"
    assert "bookkeeping write(s) failed" in caplog.text
    sha256 = hashlib.sha256(b"statistics cannot be written\n").hexdigest()
    assert client.zscore(Keys().sample(sha256), "1") is not None  # the rest was written


def test_ending_a_task_twice_never_resets_an_output_already_delivered(setup):
    from worker import outputs

    settings, _client, store, queue = setup
    queue(1, b"x", status="done")
    sent: list[tuple[int, str]] = []
    node = WorkerSettings(spool_dir=settings.spool_dir, callback_url="https://h.example/hook")
    outputs.queue_outputs(store, node, 1, {}, lambda task_id, name, wait: sent.append((task_id, name)))
    assert sent == [(1, "callback")]
    store.end_attempt(1, "callback", {"state": "delivered", "attempts": 1}, "delivered")
    outputs.queue_outputs(store, node, 1, {}, lambda task_id, name, wait: sent.append((task_id, name)))
    assert sent == [(1, "callback")]
    assert orjson.loads(store.get(1)["output:callback"])["state"] == "delivered"


def test_a_report_with_an_analyzer_error_or_limit_is_not_cached():
    from worker import result_cache

    ok = [{"info": {"analyzers": [{"name": "yara", "outcome": "ok"}]}}]
    limited = [{"info": {"analyzers": [{"name": "zip", "outcome": "limit"}]}}]
    failed = [{"info": {"analyzers": []}, "errors": [{"analyzer": "pdf", "error": "boom"}]}]
    assert result_cache.cacheable(ok)
    assert not result_cache.cacheable(limited) and not result_cache.cacheable(failed)


def test_the_cache_key_changes_with_the_settings_the_engine_reads(setup):
    from worker import result_cache

    settings = setup[0]
    record = {"sha256": "a" * 64, "file_name": "x.zip"}
    keys = {
        result_cache.cache_key(WorkerSettings(spool_dir=settings.spool_dir, **change), record, {})
        for change in ({}, {"unpack_max_depth": 3}, {"default_password_list": "other"}, {})
    }
    assert len(keys) == 3 and None not in keys
    assert (
        result_cache.cache_key(WorkerSettings(spool_dir=settings.spool_dir, cache_seconds=0), record, {})
        is None
    )


def test_the_end_of_a_delivery_attempt_records_counts_and_unlocks_in_one_round_trip(setup):
    _, client, store, queue = setup
    queue(1, b"x")
    assert store.lock_output(1, "callback", 30)
    counting = CountingPipelines(client)
    store.redis = counting
    assert store.end_attempt(1, "callback", {"state": "delivered", "attempts": 1}, "delivered")
    assert counting.executed == 1
    assert orjson.loads(client.hget(Keys().task(1), "output:callback")) == {
        "state": "delivered",
        "attempts": 1,
    }
    assert client.hget(Keys().output_stats, "callback:delivered") == "1"
    assert store.lock_output(1, "callback", 30)  # the lock was released


def test_a_report_of_an_unexpected_shape_is_stored_done_without_its_bookkeeping(setup, caplog, monkeypatch):
    from worker import tasks

    settings, _, store, queue = setup
    queue(1, b"odd report")

    def odd_engine(submission):
        return [{"info": {"analyzers": [{"name": "custom"}]}}]  # a site's engine: no duration_ms

    monkeypatch.setattr(tasks, "load_engine", lambda dotted_path: odd_engine)
    assert run_analysis(1, store, settings) == "done"
    assert store.get(1)["status"] == "done"
    assert "bookkeeping not written" in caplog.text
