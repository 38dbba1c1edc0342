"""The Hub's settings: its Workers, how it checks them, how it spools and forwards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import ServiceSettings, TokenList, parse_token_list, split_list


def parse_worker_urls(value: Any) -> list[str]:
    """Worker base URLs, comma/whitespace separated: `http(s)://host[:port]`, no path."""
    urls = []
    for item in (item.rstrip("/") for item in split_list(value)):
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ValueError(f"a Worker URL must look like http://host:port, not {item!r}")
        urls.append(item)
    if len(set(urls)) != len(urls):
        raise ValueError("each Worker URL may be listed only once")
    return urls


class HubSettings(ServiceSettings):
    """The Hub: its Workers, how it checks them, and how it spools and forwards submissions.

    Its own client tokens are the inherited token groups (`submit` for upload and
    submit-url, `admin` for the Worker status page), with the same rules as a Worker's.
    """

    port: int = 8080
    # Base URLs of the Worker APIs, e.g. "http://10.0.0.11:8081,http://10.0.0.12:8081".
    worker_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Tokens the Hub presents to the Workers' submit group: none, one for every Worker, or
    # one per Worker in the order of worker_urls.
    worker_tokens: TokenList = Field(default_factory=list)
    # Tokens the Hub presents to the Workers' tasks group, for a search by hash and for the
    # Workers' own status (same forms);
    # default: worker_tokens, which a Worker accepts there when its tasks group has none.
    worker_search_tokens: TokenList = Field(default_factory=list)
    # The CA https:// Workers are verified against. Default: with `tls` on, the CA of this
    # Hub's own TLS directory (shared with the Workers); otherwise the system's CAs.
    worker_ca_file: Path | None = None
    health_interval_seconds: float = 5
    health_timeout_seconds: float = 3
    connect_timeout_seconds: float = 5
    # How long a Worker may take to answer once it has the whole body (it answers in
    # milliseconds when well); a frozen Worker is left for the next one after this.
    worker_response_timeout_seconds: float = 10
    # A forward slower than this (a Worker that stopped reading) is abandoned and retried.
    min_forward_bytes_per_second: int = 1024 * 1024
    # Submissions are written here before they are forwarded, so a failed forward can be retried.
    spool_dir: Path = Path("/tmp/scanhub-hub-spool")
    # Bodies up to this size (with a Content-Length) are held in memory instead of the spool,
    # as long as all bodies held at once stay within memory_budget_bytes.
    memory_body_bytes: int = 1024 * 1024
    memory_budget_bytes: int = 64 * 1024**2

    @field_validator("worker_urls", mode="before")
    @classmethod
    def _worker_urls(cls, value: Any) -> list[str]:
        return parse_worker_urls(value)

    @field_validator("worker_tokens", "worker_search_tokens", mode="before")
    @classmethod
    def _worker_tokens(cls, value: Any) -> list[str]:
        return parse_token_list(value)

    @model_validator(mode="after")
    def _tokens_match_workers(self) -> HubSettings:
        if not self.worker_urls:
            raise ValueError("the Hub needs at least one Worker: set SCANHUB_WORKER_URLS")
        for name in ("worker_tokens", "worker_search_tokens"):
            if len(getattr(self, name)) not in (0, 1, len(self.worker_urls)):
                raise ValueError(f"{name}: give no token, one for every Worker, or one per Worker URL")
        if self.health_interval_seconds <= 0 or self.health_timeout_seconds <= 0:
            raise ValueError("health interval and timeout must be positive")
        return self

    def worker_ca(self) -> Path | None:
        if self.worker_ca_file is not None:
            return self.worker_ca_file
        return self.ca_file if self.tls and self.tls_certificate is None else None

    def worker_token(self, index: int) -> str | None:
        return pick_token(self.worker_tokens, index)

    def worker_search_token(self, index: int) -> str | None:
        return pick_token(self.worker_search_tokens or self.worker_tokens, index)


def pick_token(tokens: list[str], index: int) -> str | None:
    """The token for the Worker at `index`: one for all, or one per Worker."""
    if not tokens:
        return None
    return tokens[index if len(tokens) > 1 else 0]


def load_hub_settings(**overrides: Any) -> HubSettings:
    return HubSettings(**overrides)
