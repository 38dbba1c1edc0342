"""The Hub's settings: Worker URLs and tokens are checked at start-up, not at the first upload."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings

TOKEN_A, TOKEN_B = "a" * 30, "B" * 40


def test_worker_urls_are_comma_separated_and_lose_a_trailing_slash(monkeypatch):
    monkeypatch.setenv("SCANHUB_WORKER_URLS", "http://10.0.0.11:8081/, https://worker2.example:8443")
    settings = HubSettings()
    assert settings.worker_urls == ["http://10.0.0.11:8081", "https://worker2.example:8443"]
    assert settings.port == 8080


@pytest.mark.parametrize(
    "urls",
    ["", "ftp://worker:21", "http://worker:8081/api/tiscale/v1", "worker:8081", "http://a:1,http://a:1"],
)
def test_missing_or_malformed_worker_urls_stop_start_up(urls):
    with pytest.raises(ValidationError):
        HubSettings(worker_urls=urls)


def test_one_worker_token_serves_every_worker():
    settings = HubSettings(worker_urls="http://a:1,http://b:2", worker_tokens=TOKEN_A)
    assert [settings.worker_token(0), settings.worker_token(1)] == [TOKEN_A, TOKEN_A]


def test_worker_tokens_can_be_given_one_per_worker_in_order():
    settings = HubSettings(worker_urls="http://a:1,http://b:2", worker_tokens=f"{TOKEN_A},{TOKEN_B}")
    assert [settings.worker_token(0), settings.worker_token(1)] == [TOKEN_A, TOKEN_B]


def test_without_worker_tokens_the_hub_forwards_without_authorization():
    assert HubSettings(worker_urls="http://a:1").worker_token(0) is None


@pytest.mark.parametrize("tokens", [f"{TOKEN_A},{TOKEN_B},{TOKEN_A}", "short"])
def test_worker_tokens_of_the_wrong_count_or_shape_stop_start_up(tokens):
    with pytest.raises(ValidationError):
        HubSettings(worker_urls="http://a:1,http://b:2", worker_tokens=tokens)


def test_hub_client_tokens_follow_the_worker_rules(monkeypatch):
    monkeypatch.setenv("SCANHUB_SUBMIT_TOKENS", "not-a-token")
    with pytest.raises(ValidationError):
        HubSettings(worker_urls="http://a:1")
