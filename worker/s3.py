"""S3 output: each report (and, when enabled, each sample) written to a bucket.

The analysis job writes them after the analysis and before it marks the task done, as the
API says: `tc_report` and `processed` stay null until the report is in the bucket, and the
sample is still in the spool to be copied. Keys (prefixes are settings):

- report: `<s3_report_prefix>/<sha256>/<worker hostname>-<task_id>.json`, the task as
  GET /task answers it with the full (`large`) report;
- sample: `<s3_sample_prefix>/<sha256>`, written once per sample (an existing one is kept).

With samples stored, the task carries `file_link`: a presigned GET URL of the sample, valid
for `s3_link_seconds`. The outcome is the task's `outputs.s3` (`delivered`, or `failed` with
the error after botocore's own retries, `output_attempts` in all); a failed write does not
fail the task, whose report stays readable through the API.

boto3 is the client (its multipart upload streams a large sample from the spool file); it
takes no resolver, so the endpoint's addresses are checked against the outbound policy
before each write (`outbound.check_endpoint`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions

from worker import outbound
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)
DELIVERED, FAILED, REFUSED = "delivered", "failed", "refused"


class S3Output:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.bucket = settings.s3_bucket or ""
        config = botocore.config.Config(
            connect_timeout=5,
            read_timeout=settings.output_timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": max(1, settings.output_attempts)},
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=settings.s3_endpoint_url, config=config
        )
        self.networks = outbound.parse_networks(settings.outbound_allowed_networks)

    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def report_key(self, sha256: str, hostname: str, task_id: int) -> str:
        return f"{self.settings.s3_report_prefix.strip('/')}/{sha256}/{hostname}-{task_id}.json"

    def sample_key(self, sha256: str) -> str:
        return f"{self.settings.s3_sample_prefix.strip('/')}/{sha256}"

    def write(
        self, task_id: int, sha256: str, hostname: str, report: bytes, sample: Path | None
    ) -> dict[str, Any]:
        """Write the report (and the sample); returns the task's `outputs.s3` state, with
        `file_link` when the sample is stored."""
        state: dict[str, Any] = {
            "bucket": self.bucket,
            "report_key": self.report_key(sha256, hostname, task_id),
        }
        try:
            outbound.check_endpoint(self.endpoint(), self.networks)
            if sample is not None:
                key = self.sample_key(sha256)
                if not self.exists(key):
                    self.client.upload_file(str(sample), self.bucket, key)
                state["sample_key"] = key
                state["file_link"] = self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": key},
                    ExpiresIn=self.settings.s3_link_seconds,
                )
            self.client.put_object(
                Bucket=self.bucket, Key=state["report_key"], Body=report, ContentType="application/json"
            )
        except outbound.Refused as error:
            state.update(state=REFUSED, error=f"refused by the outbound policy: {error}")
            state.pop("file_link", None)
            return state
        except (
            botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError,
            boto3.exceptions.Boto3Error,  # upload_file wraps its errors in S3UploadFailedError
            OSError,
        ) as error:
            log.warning("task %s: S3 write to %s failed: %s", task_id, self.bucket, error)
            state.update(state=FAILED, error=f"{type(error).__name__}: {error}"[:300])
            state.pop("file_link", None)
            return state
        state.update(state=DELIVERED, delivered_at=int(time.time()))
        return state

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
