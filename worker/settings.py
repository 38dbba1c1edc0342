"""The settings of a Worker node: its API process and its Celery worker read the same ones."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.settings import ServiceSettings, split_list
from worker.fetch import DownloadLimits
from worker.reports import REPORT_TYPES, VIEWS, site_report_types
from worker.store import Retention

# The ruleset scanhub ships (worker/rules/*.yar); a site points SCANHUB_YARA_RULES_DIR elsewhere.
DEFAULT_RULES_DIR = Path(__file__).resolve().parent / "rules"


class WorkerSettings(ServiceSettings):
    """One Worker node: its API process and its Celery worker read the same settings."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("SCANHUB_REDIS_URL", "REDIS_URL"),
    )
    # Base of task_url, e.g. "https://worker01.example:8081"; default: the request's own host.
    public_url: str | None = None
    # Web origins (`scheme://host:port`) whose pages may read this Worker's tasks from a browser
    # (CORS): the Hub's status page follows the task_url its upload box got. `make run` sets
    # the local Hub's; empty: none.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    key_prefix: str = "scanhub"
    celery_queue: str = "scanhub"

    # Tasks waiting in the queue above which uploads are refused with 503.
    max_queue_depth: int = 10_000

    # The outbound policy (worker/outbound.py): networks the node may connect to although they
    # are not public (e.g. "10.20.0.0/16"), for submit-url, callbacks, Splunk and S3; empty: none.
    outbound_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "outbound_allowed_networks",
            "SCANHUB_OUTBOUND_ALLOWED_NETWORKS",
            "submit_url_allowed_networks",
            "SCANHUB_SUBMIT_URL_ALLOWED_NETWORKS",
        ),
    )
    submit_url_max_redirects: int = 5
    # The whole download's deadline; no byte for submit_url_read_timeout_seconds, or less than
    # submit_url_min_bytes_per_second on average after the first submit_url_rate_grace_seconds,
    # abandons it; at most submit_url_downloads_per_origin at once per host and port.
    submit_url_timeout_seconds: float = 300
    submit_url_read_timeout_seconds: float = 30
    submit_url_min_bytes_per_second: int = 10_000
    submit_url_rate_grace_seconds: float = 30
    submit_url_downloads_per_origin: int = 4

    def download_limits(self) -> DownloadLimits:
        return DownloadLimits(
            deadline_seconds=self.submit_url_timeout_seconds,
            read_timeout_seconds=self.submit_url_read_timeout_seconds,
            min_bytes_per_second=self.submit_url_min_bytes_per_second,
            grace_seconds=self.submit_url_rate_grace_seconds,
            per_origin=self.submit_url_downloads_per_origin,
        )

    # Outputs (docs/outputs.md). Callbacks: the report is POSTed to `user_data.callback.url`, else
    # to callback_url; callback_enabled off ignores both (the task's outputs field says so).
    callback_enabled: bool = True
    callback_url: str | None = None
    callback_report_type: str = "medium"
    callback_view: str | None = None
    # Splunk HTTP Event Collector: one event per finished task.
    splunk_url: str | None = None
    splunk_token: str | None = None
    splunk_index: str | None = None
    splunk_report_type: str = "small"
    # Deliveries (callbacks, Splunk): attempts in all, the wait before the second (doubling
    # after each failure, at most output_backoff_max_seconds), each attempt's time limit,
    # and how many run at once in the node's outputs worker.
    output_attempts: int = 5
    output_backoff_seconds: float = 2
    output_backoff_max_seconds: float = 600
    output_timeout_seconds: float = 10
    output_concurrency: int = 8
    # CA bundle for HTTPS receivers with a private CA; default: the system's CAs.
    output_ca_file: Path | None = None
    # S3: the report (and the sample when s3_store_samples) is written before the task is done.
    # Credentials and region come from the usual AWS_* variables (or an instance role).
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_report_prefix: str = "reports"
    s3_sample_prefix: str = "samples"
    s3_store_samples: bool = False
    # Validity of file_link (a presigned URL); at most 7 days, S3's own limit.
    s3_link_seconds: int = 7 * 24 * 3600
    # Result cache: a file analyzed here with the same ruleset and engine version within this
    # many seconds gets a copy of that report instead of a new analysis; 0 turns it off.
    cache_seconds: int = 3600

    # Retention (docs/operations.md), in minutes as the Worker API names them.
    task_age_limit_minutes: float = 90
    unprocessed_task_limit_minutes: float = 60
    file_age_limit_minutes: float = 1440
    sweep_interval_seconds: float = 30
    # A task still queued this long with no job in the broker (its job was lost in a crash)
    # is sent again; must stay below the unprocessed task limit, which cancels it.
    requeue_stranded_after_seconds: float = 300

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

    @field_validator("report_types_file")
    @classmethod
    def _report_types_readable(cls, value: Path | None) -> Path | None:
        """A broken site report-types file stops start-up, not the first GET /task."""
        if value is not None:
            try:
                site_report_types(value)
            except (OSError, ValueError) as error:
                raise ValueError(f"report types file {value}: {error}") from None
        return value

    @property
    def outputs_queue(self) -> str:
        """The queue of output deliveries, consumed by the node's outputs worker."""
        return f"{self.celery_queue}.outputs"

    @property
    def task_age_limit_seconds(self) -> int:
        return max(1, round(self.task_age_limit_minutes * 60))

    @property
    def unprocessed_task_limit_seconds(self) -> int:
        return max(1, round(self.unprocessed_task_limit_minutes * 60))

    @property
    def file_age_limit_seconds(self) -> int:
        return max(1, round(self.file_age_limit_minutes * 60))

    def report_types(self) -> dict[str, Any]:
        """The built-in report types and the site's own."""
        return {**REPORT_TYPES, **site_report_types(self.report_types_file)}

    @model_validator(mode="after")
    def _output_report_types_exist(self) -> WorkerSettings:
        known = self.report_types()
        for name in ("callback_report_type", "splunk_report_type"):
            value = getattr(self, name)
            if value not in known:
                raise ValueError(f"{name}: unknown report type {value!r}; one of {', '.join(known)}")
        return self

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

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        return [origin.rstrip("/") for origin in split_list(value)]

    @field_validator("outbound_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> list[str]:
        return [str(ipaddress.ip_network(item, strict=False)) for item in split_list(value)]

    @field_validator("s3_link_seconds")
    @classmethod
    def _link_within_s3_limit(cls, value: int) -> int:
        if not 1 <= value <= 7 * 24 * 3600:
            raise ValueError("s3_link_seconds must be between 1 and 604800 (7 days, S3's limit)")
        return value

    @field_validator("callback_view")
    @classmethod
    def _known_view(cls, value: str | None) -> str | None:
        if value not in (None, "", *VIEWS):
            raise ValueError(f"unknown view {value!r}; one of {', '.join(VIEWS)}")
        return value or None

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
