"""Typed settings for each service, read once from the environment (and an optional file)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from common.store import Retention

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9]{30,60}$")
# The ruleset scanhub ships (worker/rules/*.yar); a site points SCANHUB_YARA_RULES_DIR elsewhere.
DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "worker" / "rules"


def parse_token_list(value: Any) -> list[str]:
    """Accept a list or a comma/whitespace separated string of tokens, refusing bad ones.

    The spec says a token is 30 to 60 alphanumerics; anything else is a configuration
    mistake that must stop start-up rather than silently open or close the API.
    """
    if value is None or value == "":
        return []
    tokens = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value)
    tokens = [token for token in tokens if token]
    for token in tokens:
        if not TOKEN_PATTERN.fullmatch(token):
            raise ValueError("every token must be 30 to 60 alphanumeric characters")
    return tokens


# Read as a plain comma-separated string, not JSON.
TokenList = Annotated[list[str], NoDecode]


class ServiceSettings(BaseSettings):
    """What both services read: environment variables prefixed SCANHUB_, or a config file.

    `SCANHUB_CONFIG` may name a `.env`-style file whose keys are the same variable names;
    the environment wins over the file.
    """

    model_config = SettingsConfigDict(env_prefix="SCANHUB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    log_level: str = "INFO"
    # Token groups (submit, tasks, admin). An empty group means no auth for that group.
    submit_tokens: TokenList = Field(default_factory=list)
    tasks_tokens: TokenList = Field(default_factory=list)
    admin_tokens: TokenList = Field(default_factory=list)
    # Signs OAuth2 bearer tokens; unset: a random secret per process (see common/auth.py).
    bearer_secret: str | None = None
    tls_certificate: Path | None = None
    tls_key: Path | None = None

    @field_validator("submit_tokens", "tasks_tokens", "admin_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> list[str]:
        return parse_token_list(value)

    @field_validator("bearer_secret")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("bearer_secret must be at least 32 characters (RFC 7518 §3.2)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("SCANHUB_CONFIG")
        if config_file:
            from pydantic_settings import DotEnvSettingsSource

            file_source = DotEnvSettingsSource(settings_cls, env_file=config_file)
            return (init_settings, env_settings, file_source)
        return (init_settings, env_settings)


class WorkerSettings(ServiceSettings):
    """One Worker node: its API process and its Celery worker read the same settings."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("SCANHUB_REDIS_URL", "REDIS_URL"),
    )
    spool_dir: Path = Path("/tmp/scanhub-spool")
    # Base of task_url, e.g. "https://worker01.example:8081"; default: the request's own host.
    public_url: str | None = None
    key_prefix: str = "scanhub"
    celery_queue: str = "scanhub"

    max_upload_bytes: int = 2 * 1024**3
    max_form_field_bytes: int = 1024 * 1024
    # Tasks waiting in the queue above which uploads are refused with 503.
    max_queue_depth: int = 10_000
    retry_after_seconds: int = 5
    min_free_spool_bytes: int = 256 * 1024**2

    # submit-url: networks allowed even though not public (e.g. "10.20.0.0/16"); empty: none.
    submit_url_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    submit_url_max_redirects: int = 5
    submit_url_timeout_seconds: float = 300

    # Retention (see the README), in minutes as the spec names them.
    task_age_limit_minutes: float = 90
    unprocessed_task_limit_minutes: float = 60
    file_age_limit_minutes: float = 1440
    sweep_interval_seconds: float = 30

    # Celery behaviour.
    analysis_soft_time_limit_seconds: float = 120
    analysis_time_limit_seconds: float = 150
    # Must exceed the longest task, or Redis hands a running task to a second worker.
    visibility_timeout_seconds: int = 3600
    # How often a Celery worker looks for jobs whose process died (kombu's restore sweep).
    unacked_restore_interval_seconds: float = 10
    max_analysis_attempts: int = 3
    # Under load, uploads that arrive while a job is being queued share one Celery job.
    max_job_batch: int = 8
    celery_concurrency: int = 0  # 0: one process per core
    # Dotted path "module:function" of the analysis engine; a site may swap in its own.
    engine: str = "worker.analysis.engine:analyze_file"
    # Celery processes write a heartbeat this often; /health wants one younger than 3x this.
    celery_heartbeat_seconds: float = 5

    # Analysis engine (docs/analyzers.md). YARA: every `*.yar` / `*.yara` file in this directory is one
    # ruleset; the API and all Celery processes of a node read the same directory.
    yara_rules_dir: Path = DEFAULT_RULES_DIR
    # How often a Celery process looks (file names, sizes, mtimes) for a changed ruleset
    # before analyzing a file; recompiling happens only when the rules' digest changed.
    yara_check_interval_seconds: float = 2.0
    # Off: POST /pull/all answers 417, as the spec says for a Worker without synchronization.
    yara_sync_enabled: bool = True
    yara_scan_timeout_seconds: int = 20
    # Unpacking limits, enforced on the bytes actually decompressed (headers are never trusted).
    # As deep as widely used scanners go (ClamAV's default is 17).
    unpack_max_depth: int = 17
    unpack_max_children: int = 1000  # per task, all levels together
    unpack_max_total_bytes: int = 1024**3  # per task, all children together
    # Expanded bytes per compressed byte for one member, checked once it passes 1 MiB.
    unpack_max_ratio: float = 100
    # Time for one file's own analysis and extraction (its children get their own).
    analysis_file_time_limit_seconds: float = 30
    # Passwords tried per encrypted container, the submitter's first: each wrong one costs
    # a decryption attempt, so a long list is a CPU denial of service.
    password_list_max: int = 100
    # Tried after `user_data.password_list` on encrypted archives.
    default_password_list: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["infected", "malware", "virus", "password", "1234"]
    )
    # Interesting strings: bytes read from each file, values kept per category.
    # Largest document (or zip member of one) handed to oletools, which reads it whole.
    office_max_bytes: int = 64 * 1024**2
    strings_scan_bytes: int = 2 * 1024**2
    strings_max_per_category: int = 50
    # A JSON file of extra report types {"name": {"include": [...], "exclude": [...]}}.
    report_types_file: Path | None = None

    @property
    def task_age_limit_seconds(self) -> int:
        return max(1, round(self.task_age_limit_minutes * 60))

    @property
    def unprocessed_task_limit_seconds(self) -> int:
        return max(1, round(self.unprocessed_task_limit_minutes * 60))

    @property
    def file_age_limit_seconds(self) -> int:
        return max(1, round(self.file_age_limit_minutes * 60))

    @model_validator(mode="after")
    def _visibility_covers_a_batch(self) -> WorkerSettings:
        longest_job = self.analysis_time_limit_seconds * self.max_job_batch
        if self.visibility_timeout_seconds <= longest_job:
            raise ValueError(
                f"visibility_timeout_seconds must exceed the longest job ({longest_job:g} s: the hard "
                "time limit times max_job_batch), or a running job is handed to a second worker"
            )
        return self

    def retention(self) -> Retention:
        return Retention(
            done_seconds=self.task_age_limit_seconds,
            failed_seconds=self.file_age_limit_seconds,
            unprocessed_seconds=self.unprocessed_task_limit_seconds,
        )

    @field_validator("submit_url_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> list[str]:
        import ipaddress

        items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value or [])
        return [str(ipaddress.ip_network(item, strict=False)) for item in items if item]

    @field_validator("default_password_list", mode="before")
    @classmethod
    def _passwords(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            return [item for item in value.split(",") if item]
        return list(value or [])

    @field_validator("analysis_time_limit_seconds")
    @classmethod
    def _hard_limit_after_soft(cls, value: float, info: Any) -> float:
        soft = info.data.get("analysis_soft_time_limit_seconds", 0)
        if value <= soft:
            raise ValueError("analysis_time_limit_seconds must exceed the soft limit")
        return value


def load_worker_settings(**overrides: Any) -> WorkerSettings:
    return WorkerSettings(**overrides)


def parse_worker_urls(value: Any) -> list[str]:
    """Worker base URLs, comma/whitespace separated: `http(s)://host[:port]`, no path."""
    from urllib.parse import urlsplit

    if value is None or value == "":
        return []
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value)
    urls = []
    for item in (str(item).strip().rstrip("/") for item in items):
        if not item:
            continue
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
    health_interval_seconds: float = 5
    health_timeout_seconds: float = 3
    connect_timeout_seconds: float = 5
    # How long a Worker may take to answer once it has the whole body.
    worker_response_timeout_seconds: float = 60
    # A forward slower than this (a Worker that stopped reading) is abandoned and retried.
    min_forward_bytes_per_second: int = 1024 * 1024
    # Submissions are written here before they are forwarded, so a failed forward can be retried.
    spool_dir: Path = Path("/tmp/scanhub-hub-spool")
    min_free_spool_bytes: int = 256 * 1024**2
    # Bodies up to this size (with a Content-Length) are held in memory instead of the spool,
    # as long as all bodies held at once stay within memory_budget_bytes.
    memory_body_bytes: int = 1024 * 1024
    memory_budget_bytes: int = 64 * 1024**2
    max_upload_bytes: int = 2 * 1024**3
    max_form_field_bytes: int = 1024 * 1024
    retry_after_seconds: int = 5

    @field_validator("worker_urls", mode="before")
    @classmethod
    def _worker_urls(cls, value: Any) -> list[str]:
        return parse_worker_urls(value)

    @field_validator("worker_tokens", mode="before")
    @classmethod
    def _worker_tokens(cls, value: Any) -> list[str]:
        return parse_token_list(value)

    @model_validator(mode="after")
    def _tokens_match_workers(self) -> HubSettings:
        if not self.worker_urls:
            raise ValueError("the Hub needs at least one Worker: set SCANHUB_WORKER_URLS")
        if len(self.worker_tokens) not in (0, 1, len(self.worker_urls)):
            raise ValueError("give no worker token, one for every Worker, or one per Worker URL")
        if self.health_interval_seconds <= 0 or self.health_timeout_seconds <= 0:
            raise ValueError("health interval and timeout must be positive")
        return self

    def worker_token(self, index: int) -> str | None:
        if not self.worker_tokens:
            return None
        return self.worker_tokens[index if len(self.worker_tokens) > 1 else 0]


def load_hub_settings(**overrides: Any) -> HubSettings:
    return HubSettings(**overrides)
