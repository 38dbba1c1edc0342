"""Settings are read from the environment and refuse unsafe configurations at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.settings import WorkerSettings


@pytest.mark.parametrize("token", ["short", "a" * 61, "has-dash" + "a" * 30, "spaces in " + "a" * 30])
def test_tokens_that_are_not_30_to_60_alphanumerics_are_refused(monkeypatch, token):
    monkeypatch.setenv("SCANHUB_SUBMIT_TOKENS", token)
    with pytest.raises(ValidationError):
        WorkerSettings()


def test_token_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("SCANHUB_TASKS_TOKENS", f"{'a' * 30},{'B' * 60}")
    assert WorkerSettings().tasks_tokens == ["a" * 30, "B" * 60]


def test_redis_url_falls_back_to_plain_redis_url_variable(monkeypatch):
    monkeypatch.delenv("SCANHUB_REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6380/2")
    assert WorkerSettings().redis_url == "redis://elsewhere:6380/2"


def test_config_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "worker.env"
    config.write_text("SCANHUB_PORT=9001\nSCANHUB_MAX_QUEUE_DEPTH=7\n")
    monkeypatch.setenv("SCANHUB_CONFIG", str(config))
    monkeypatch.setenv("SCANHUB_PORT", "9002")
    settings = WorkerSettings()
    assert settings.max_queue_depth == 7
    assert settings.port == 9002


def test_hard_time_limit_must_exceed_soft_limit():
    with pytest.raises(ValidationError):
        WorkerSettings(analysis_soft_time_limit_seconds=10, analysis_time_limit_seconds=5)


def test_retention_defaults_follow_the_spec():
    retention = WorkerSettings().retention()
    assert retention.done_seconds == 90 * 60
    assert retention.unprocessed_seconds == 60 * 60
    assert retention.failed_seconds == 1440 * 60


def test_short_bearer_secret_is_refused():
    with pytest.raises(ValidationError):
        WorkerSettings(bearer_secret="too-short")
