"""Every Redis key name and every read or write of a task record lives here.

A task record is a Redis hash `<prefix>:task:<id>`. Two sorted sets index it by
submission time: `<prefix>:tasks` (every live record) and `<prefix>:queued` (records not
yet picked up by an analysis process; its size is the node's queue depth). Status changes
go through one Lua script, so a record deleted or canceled by the API is never brought
back by a late write from an analysis process.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

QUEUED, ANALYZING, DONE, FAILED = "queued", "analyzing", "done", "failed"

# Throughput as the status pages show it: tasks done per minute over the last 15 minutes.
THROUGHPUT_INTERVAL_SECONDS = 60
THROUGHPUT_INTERVALS = 15
VERDICTS = ("unknown", "goodware", "suspicious", "malicious")  # by classification code 0-3
# Upper bounds (seconds) of the time-to-report histogram's buckets; the last is +Inf.
TIME_TO_REPORT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# KEYS[1] task hash, KEYS[2] queued index, KEYS[3] outcome counters (a hash: done, failed).
# ARGV[1] ttl (0 keeps it), ARGV[2] allowed current statuses ("" any), ARGV[3] task id,
# ARGV[4] name of a counter field to increment ("" none), ARGV[5..] field/value pairs.
# Returns 0 when the record is gone, -1 when its status is not allowed, else 1 or the counter.
# A record whose status leaves `queued` leaves the queued index in the same step.
TRANSITION_FUNCTION = """
local function transition()
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if ARGV[2] ~= '' then
    local status = redis.call('HGET', KEYS[1], 'status') or ''
    if not string.find(',' .. ARGV[2] .. ',', ',' .. status .. ',', 1, true) then return -1 end
  end
  local result = 1
  if ARGV[4] ~= '' then result = redis.call('HINCRBY', KEYS[1], ARGV[4], 1) end
  local leaves_queue = false
  for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    if ARGV[i] == 'status' then
      if ARGV[i + 1] ~= 'queued' then leaves_queue = true end
      if ARGV[i + 1] == 'done' or ARGV[i + 1] == 'failed' then
        redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
      end
    end
  end
  if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
  if leaves_queue then redis.call('ZREM', KEYS[2], ARGV[3]) end
  return result
end
"""
TRANSITION_SCRIPT = TRANSITION_FUNCTION + "return transition()\n"
# The same, returning the record as it is afterwards: {result, {field, value, ...}}.
TRANSITION_AND_READ_SCRIPT = (
    TRANSITION_FUNCTION
    + """
local result = transition()
if result <= 0 then return {result} end
return {result, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS[1] task hash; ARGV[1] output field, ARGV[2] its first state. 1 when written; 0 when
# the task is gone or the output was planned before.
PLAN_OUTPUT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""

# Task ids carry the node's epoch: a random number drawn the first time a Redis is used
# (kept under `Keys.epoch`), in the high bits, above a counter. A Redis that loses its data
# for good draws a new epoch, so a task_url handed out before the loss can never name
# another submission's task: it answers 404. Ids stay below 2**53 (exact in JSON clients).
EPOCH_BITS, COUNTER_BITS = 20, 32
# One round trip to create a task: allocate its id, write the record, index it.
# KEYS[1] id counter, KEYS[2] all-tasks index, KEYS[3] queued index, KEYS[4] epoch;
# ARGV[1] task key prefix, ARGV[2] ttl, ARGV[3] submitted, ARGV[4] an epoch to use if the
# Redis has none yet, ARGV[5..] field/value pairs.
# (Builds a key inside the script, so it is not for Redis Cluster; a node owns its Redis.)
CREATE_SCRIPT = """
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[4], epoch)
end
local counter = redis.call('INCR', KEYS[1])
if counter >= 4294967296 then  -- the counter is spent: move to the next epoch
  epoch = (tonumber(epoch) % 1048575) + 1
  redis.call('SET', KEYS[4], epoch)
  redis.call('SET', KEYS[1], 1)
  counter = 1
end
local task_id = string.format('%.0f', tonumber(epoch) * 4294967296 + counter)
local key = ARGV[1] .. task_id
redis.call('HSET', key, 'task_id', task_id, 'submitted', ARGV[3], 'status', 'queued', 'attempts', 0)
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', key, ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], task_id)
redis.call('ZADD', KEYS[3], ARGV[3], task_id)
-- The search index (as sample_index_commands writes it), when the file's hashes are known:
-- KEYS[5] the sample's entries, KEYS[6..] its MD5 and SHA1 aliases; ARGV[5] their time to
-- live (0: no index), ARGV[6] the SHA256.
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('ZADD', KEYS[5], ARGV[3], task_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. string.format('%.0f', tonumber(ARGV[3]) - ttl))
  redis.call('EXPIRE', KEYS[5], ttl)
  for i = 6, #KEYS do redis.call('SET', KEYS[i], ARGV[6], 'EX', ttl) end
end
return task_id
"""

LIST_FIELDS = ("submitted", "processed", "token")
# What a search by hash reads of each task (see `search_entry`).
SEARCH_FIELDS = ("submitted", "processed", "status", "classification", "threat_name", "sha256", "file_name")
# Task record fields holding the state of each output: `output:callback`, `output:splunk`, `output:s3`.
OUTPUT_FIELD_PREFIX = "output:"


# The Celery workers of a node by what they run: analysis jobs, or output deliveries.
ROLE_KEYS = {"analysis": "celery", "outputs": "celery-outputs"}


@dataclass(frozen=True)
class Keys:
    prefix: str = "scanhub"

    def task(self, task_id: int) -> str:
        return f"{self.task_prefix}{task_id}"

    @property
    def task_prefix(self) -> str:
        return f"{self.prefix}:task:"

    @property
    def task_counter(self) -> str:
        return f"{self.prefix}:task_ids"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def all_tasks(self) -> str:
        return f"{self.prefix}:tasks"

    @property
    def queued_tasks(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}:stats:outcomes"

    @property
    def analyzer_stats(self) -> str:
        return f"{self.prefix}:stats:analyzers"

    @property
    def verdicts(self) -> str:
        """A hash: tasks done on this node by the classification of the submitted file."""
        return f"{self.prefix}:stats:verdicts"

    @property
    def time_to_report(self) -> str:
        """A hash: done tasks by the bucket of their time from acceptance to stored report
        (`le:<bound>`, each task in its smallest bucket), `count` of them all, and `sum`, their
        seconds together."""
        return f"{self.prefix}:stats:time_to_report"

    def done_in_interval(self, interval: int) -> str:
        """A counter of the tasks done during one `THROUGHPUT_INTERVAL_SECONDS` interval
        (numbered from the epoch); it expires once out of the `THROUGHPUT_INTERVALS` window."""
        return f"{self.prefix}:stats:done:{interval}"

    @property
    def output_stats(self) -> str:
        return f"{self.prefix}:stats:outputs"

    def sample(self, sha256: str) -> str:
        """Sorted set of the tasks (by submission time) whose file is, or holds, this sample."""
        return f"{self.prefix}:sample:{sha256}"

    def digest_alias(self, digest: str) -> str:
        """An MD5 or SHA1 -> the SHA256 of the same sample."""
        return f"{self.prefix}:digest:{digest}"

    def cached_result(self, cache_key: str) -> str:
        return f"{self.prefix}:cache:{cache_key}"

    def output_lock(self, task_id: int, output: str) -> str:
        return f"{self.prefix}:output-lock:{task_id}:{output}"

    @property
    def license(self) -> str:
        return f"{self.prefix}:license"

    @property
    def sweeper_lock(self) -> str:
        return f"{self.prefix}:sweeper:lock"

    def celery_heartbeat(self, hostname: str, role: str = "analysis") -> str:
        """A live Celery worker's key; `role` is analysis or outputs."""
        return f"{self.prefix}:{ROLE_KEYS[role]}:heartbeat:{hostname}"

    def celery_heartbeat_pattern_of(self, role: str) -> str:
        return f"{self.prefix}:{ROLE_KEYS[role]}:heartbeat:*"

    @property
    def celery_heartbeat_pattern(self) -> str:
        return self.celery_heartbeat_pattern_of("analysis")


@dataclass(frozen=True)
class Retention:
    """TTLs in seconds for each stage of a record's life (see docs/operations.md)."""

    done_seconds: int
    failed_seconds: int
    unprocessed_seconds: int

    @property
    def queued_seconds(self) -> int:
        # A safety net only: the sweeper cancels a stale queued task well before this.
        return self.unprocessed_seconds + self.failed_seconds

    @property
    def longest_record_seconds(self) -> int:
        """The longest any record lives after its submission: queued, then kept done or failed."""
        return self.unprocessed_seconds + max(self.done_seconds, self.failed_seconds)


# Where kombu's Redis transport keeps jobs a consumer took but has not acknowledged: a hash
# of delivery tag -> JSON [message, exchange, routing key] (kombu's default key name).
UNACKED_JOBS_KEY = "unacked"


def task_ids_of_job(message: dict[str, Any]) -> list[int]:
    """The task ids a Celery job message carries: `scanhub.analyze` has one, a batch a list."""
    args = orjson.loads(base64.b64decode(message["body"]))[0]
    first = args[0] if args else []
    return [int(task_id) for task_id in (first if isinstance(first, list) else [first])]


def connect(url: str) -> redis.Redis:
    """A Redis client for an analysis process: reconnects and retries a command a few
    times (with backoff) when the server restarts, instead of failing the first command."""
    return redis.Redis.from_url(url, decode_responses=True, **reconnecting())


def connect_async(url: str) -> aioredis.Redis:
    """The API's Redis client, with the same reconnecting retries."""
    return aioredis.Redis.from_url(url, decode_responses=True, **reconnecting(asynchronous=True))


def reconnecting(asynchronous: bool = False) -> dict[str, Any]:
    retry_class = AsyncRetry if asynchronous else Retry
    return {
        "retry": retry_class(ExponentialBackoff(cap=1.0, base=0.05), retries=4),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 30,
    }


def new_epoch() -> int:
    """A random epoch for a Redis that has none yet (never 0)."""
    return secrets.randbelow(2**EPOCH_BITS - 1) + 1


def normalize_filter_token(token: str | None) -> str:
    """`X-TiScale-Token` and the list filter may carry a `Token ` prefix; compare without it."""
    token = (token or "").strip()
    if token[:6].lower() == "token ":
        token = token[6:].strip()
    return token


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Strings stay as they are; everything else is stored as JSON text."""
    encoded = {}
    for name, value in fields.items():
        if value is None:
            continue
        encoded[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return encoded


def done_fields(
    report: Any, worker_identity: dict[str, Any], now: int, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    verdict = verdict_fields(report)
    fields = {"status": DONE, "processed": now, "tc_report": report, **worker_identity, **verdict}
    return encode_fields({**fields, **(extra or {})})


def verdict_fields(report: Any) -> dict[str, Any]:
    """The verdict of a report's first entry, kept beside the report for searches."""
    first = report[0] if isinstance(report, list) and report and isinstance(report[0], dict) else {}
    classification = first.get("classification")
    if not isinstance(classification, dict):
        return {}
    return {
        "classification": classification.get("classification"),
        "threat_name": classification.get("result"),
    }


def failed_fields(reason: str, now: int, worker_identity: dict[str, Any] | None = None):
    return encode_fields({"status": FAILED, "processed": now, "error": reason, **(worker_identity or {})})


def _json_or(text: str | None, default: Any) -> Any:
    return default if text is None else orjson.loads(text)


def task_view(fields: dict[str, str]) -> dict[str, Any]:
    """The client's JSON for one task, from its stored hash (spec: task info response)."""
    status = fields.get("status", QUEUED)
    processed = fields.get("processed")
    view: dict[str, Any] = {
        "task_id": int(fields["task_id"]),
        "submitted": int(fields["submitted"]),
        "processed": int(processed) if processed else None,
        "status": status,
        "worker_ip": _json_or(fields.get("worker_ip"), []),
        "worker_address": _json_or(fields.get("worker_address"), []),
        "worker_hostname": fields.get("worker_hostname"),
        "direct_sender": fields.get("direct_sender"),
        "forwarded_for": _json_or(fields.get("forwarded_for"), []),
    }
    # Always present, null until there is a report: clients read it without a key check.
    view["tc_report"] = _json_or(fields.get("tc_report"), None) if status == DONE else None
    if status == FAILED:
        view["error"] = fields.get("error", "")
    if fields.get("cached") == "true":
        view["cached"] = True
    if "file_link" in fields:
        view["file_link"] = fields["file_link"]
    outputs = {
        name.removeprefix(OUTPUT_FIELD_PREFIX): orjson.loads(value)
        for name, value in fields.items()
        if name.startswith(OUTPUT_FIELD_PREFIX)
    }
    if outputs:
        view["outputs"] = outputs
    # Spec: custom_data is returned only once the file has been processed.
    if view["processed"] and "custom_data" in fields:
        # Returned as the client sent it: re-encoding would, say, turn a 30-digit integer
        # into a float. The text was checked to be valid JSON at upload.
        view["custom_data"] = orjson.Fragment(fields["custom_data"].encode())
    return view


def list_entry(task_id: int, values: Sequence[str | None]) -> dict[str, Any]:
    submitted, processed, _token = values
    return {
        "submitted": int(submitted or 0),
        "task_id": task_id,
        "processed": int(processed) if processed else None,
    }


def search_entry(task_id: int, values: Sequence[str | None], sha256: str) -> dict[str, Any]:
    submitted, processed, status, classification, threat_name, own_sha256, file_name = values
    code = int(classification) if classification else None
    return {
        "task_id": task_id,
        "submitted": int(submitted or 0),
        "processed": int(processed) if processed else None,
        "status": status or QUEUED,
        "classification": code,
        "threat_name": threat_name or None,
        "file_name": file_name or "",
        # "file": the task's own file is this sample; "child": it was found inside it.
        "found_as": "file" if own_sha256 == sha256 else "child",
    }


def sample_index_commands(
    pipe: Any, keys: Keys, task_id: int, submitted: float, digests: Iterable[dict[str, str]], ttl: int
) -> None:
    """Queue on `pipe` the writes that make a task findable by each sample's hashes."""
    for sample in digests:
        sha256 = sample.get("sha256")
        if not sha256:
            continue
        pipe.zadd(keys.sample(sha256), {str(task_id): submitted})
        # Entries older than any record can live are dropped as new ones come, so a sample
        # submitted all day long keeps an index as long as its live tasks, not its history.
        pipe.zremrangebyscore(keys.sample(sha256), "-inf", f"({submitted - ttl}")
        pipe.expire(keys.sample(sha256), ttl)
        for kind in ("md5", "sha1"):
            if sample.get(kind):
                pipe.set(keys.digest_alias(sample[kind]), sha256, ex=ttl)


def report_digests(report: Any) -> list[dict[str, str]]:
    """The md5/sha1/sha256 of every file in a report (the task's own file and its children)."""
    found = []
    for entry in report if isinstance(report, list) else []:
        hashes = entry.get("info", {}).get("file", {}).get("hashes", [])
        digest = {
            item["name"]: item["value"] for item in hashes if item.get("name") in ("md5", "sha1", "sha256")
        }
        if digest.get("sha256"):
            found.append(digest)
    return found


class TaskStore:
    """Async access for the API processes (aiohttp).

    `on_end(task_id)`, when given, is awaited after this store ends a task as failed (a
    download that failed, a job that could not be queued, a task canceled by retention),
    so its outputs can be sent.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        retention: Retention,
        on_end: Callable[[int], Awaitable[None]] | None = None,
    ):
        self.redis = client
        self.keys = keys
        self.retention = retention
        self.on_end = on_end
        self._transition = client.register_script(TRANSITION_SCRIPT)
        self._create = client.register_script(CREATE_SCRIPT)

    async def index_sample(self, task_id: int, submitted: float, digests: dict[str, str]) -> None:
        """Make a task findable by its file's hashes. A failure is logged, not raised: the task
        exists and is queued, and its children are indexed when it is done."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                ttl = self.retention.longest_record_seconds
                sample_index_commands(pipe, self.keys, task_id, submitted, [digests], ttl)
                await pipe.execute()
        except redis.RedisError as error:
            log.warning("task %s: search index not updated: %s", task_id, error)

    async def sha256_of(self, digest: str) -> str | None:
        """The SHA256 a hex digest stands for: itself when 64 long, else its alias, if known."""
        if len(digest) == 64:
            return digest
        found = await self.redis.get(self.keys.digest_alias(digest))
        return str(found) if found else None

    async def search(self, sha256: str, limit: int) -> list[dict[str, Any]]:
        """The live tasks whose file is, or holds, this sample, newest first."""
        key = self.keys.sample(sha256)
        members = cast(list[str], await self.redis.zrevrange(key, 0, limit - 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hmget(self.keys.task(int(member)), list(SEARCH_FIELDS))
            rows = await pipe.execute()
        entries, gone = [], []
        for member, values in zip(members, rows, strict=True):
            if values[0] is None:
                gone.append(member)  # expired or deleted
                continue
            entries.append(search_entry(int(member), values, sha256))
        if gone:
            await self.redis.zrem(key, *gone)
        return entries

    async def output_stats(self) -> dict[tuple[str, str], int]:
        """Deliveries per (output, outcome): delivered, retried, failed, refused."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.output_stats))
        return {tuple(field.split(":", 1)): int(value) for field, value in raw.items()}  # type: ignore[misc]

    async def create(self, submitted: int, indexed: bool = False, **fields: Any) -> int:
        """A new queued task with these fields; its id. `indexed`: the fields hold the file's
        hashes and the task is made findable by them in the same round trip."""
        keys = self.keys
        index_keys: list[str] = []
        ttl, sha256 = 0, ""
        if indexed and fields.get("sha256"):
            sha256, ttl = str(fields["sha256"]), self.retention.longest_record_seconds
            index_keys = [keys.sample(sha256)]
            index_keys += [
                keys.digest_alias(str(fields[kind])) for kind in ("md5", "sha1") if fields.get(kind)
            ]
        task_id = await self._create(
            keys=[keys.task_counter, keys.all_tasks, keys.queued_tasks, keys.epoch, *index_keys],
            args=[
                keys.task_prefix,
                self.retention.queued_seconds,
                submitted,
                new_epoch(),
                ttl,
                sha256,
                *_flatten(encode_fields(fields)),
            ],
        )
        return int(task_id)

    async def durability(self) -> str:
        """Whether a task accepted now survives a Redis crash: "ok" when Redis fsyncs its
        append-only file before answering each write (`appendfsync always`), else why not."""
        try:
            config = await self.redis.config_get("append*")
        except Exception as error:  # CONFIG may be renamed or refused (managed Redis)
            return f"unknown: {error}"
        if config.get("appendonly") != "yes":
            return "not durable: appendonly is off, a Redis restart loses queued tasks"
        if config.get("appendfsync") != "always":
            policy = config.get("appendfsync")
            return f"appendfsync {policy}: a Redis crash can lose the last second of accepted tasks"
        return "ok"

    async def get(self, task_id: int) -> dict[str, str] | None:
        fields = cast(dict[str, str], await self.redis.hgetall(self.keys.task(task_id)))
        return fields or None

    async def status(self, task_id: int) -> str | None:
        status = await self.redis.hget(self.keys.task(task_id), "status")
        return str(status) if status is not None else None

    async def fail(self, task_id: int, reason: str, now: int, only_if: str = "") -> bool:
        result = await self._transition(
            keys=[self.keys.task(task_id), self.keys.queued_tasks, self.keys.outcomes],
            args=[self.retention.failed_seconds, only_if, task_id, "", *_flatten(failed_fields(reason, now))],
        )
        if int(result) <= 0:
            return False
        if self.on_end is not None:
            try:
                await self.on_end(task_id)
            except Exception:  # the task has failed either way; its outputs are not sent
                log.exception("task %s: outputs of the failed task could not be queued", task_id)
        return True

    async def update(self, task_id: int, fields: dict[str, Any], only_if: str) -> bool:
        """Add fields to a record still in one of the `only_if` statuses (comma-separated)."""
        result = await self._transition(
            keys=[self.keys.task(task_id), self.keys.queued_tasks, self.keys.outcomes],
            args=[0, only_if, task_id, "", *_flatten(encode_fields(fields))],
        )
        return int(result) > 0

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(self.keys.queued_tasks))

    async def task_ids_with_jobs(self, queue: str) -> set[int]:
        """Ids of every task with a job in the broker: waiting in `queue`, or taken by a
        Celery worker and not yet acknowledged. Reads the whole queue: for the reconciler."""
        found: set[int] = set()
        for raw in await self.redis.lrange(queue, 0, -1):
            found.update(task_ids_of_job(orjson.loads(raw)))
        for raw in await self.redis.hvals(UNACKED_JOBS_KEY):
            message, _exchange, routing_key = orjson.loads(raw)
            if routing_key == queue:
                found.update(task_ids_of_job(message))
        return found

    async def analyzing_since_before(self, cutoff: float) -> list[int]:
        """Tasks still `analyzing` whose analysis started before `cutoff` (seconds)."""
        found = []
        for batch in _batches(await self.ids_submitted_before(cutoff), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in batch:
                    pipe.hmget(self.keys.task(task_id), ["status", "started"])
                rows = await pipe.execute()
            for task_id, (status, started) in zip(batch, rows, strict=True):
                if status == ANALYZING and started is not None and float(started) < cutoff:
                    found.append(task_id)
        return found

    async def ids_submitted_before(self, cutoff: float, index: str | None = None) -> list[int]:
        members = cast(
            list[str], await self.redis.zrangebyscore(index or self.keys.all_tasks, "-inf", cutoff)
        )
        return [int(member) for member in members]

    async def list_tasks(self, max_submitted: float, token: str | None) -> list[dict[str, Any]]:
        wanted = normalize_filter_token(token) if token is not None else None
        entries = []
        for batch in _batches(await self.ids_submitted_before(max_submitted), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in batch:
                    pipe.hmget(self.keys.task(task_id), list(LIST_FIELDS))
                rows = await pipe.execute()
            for task_id, values in zip(batch, rows, strict=True):
                if values[0] is None:
                    continue  # expired; the sweeper prunes the index
                if wanted is not None and normalize_filter_token(values[2]) != wanted:
                    continue
                entries.append(list_entry(task_id, values))
        return entries

    async def delete(self, task_ids: Iterable[int]) -> dict[int, str]:
        """Delete records; returns the status each had (missing ones are left out)."""
        deleted: dict[int, str] = {}
        for batch in _batches(list(task_ids), 1000):
            async with self.redis.pipeline(transaction=True) as pipe:
                for task_id in batch:
                    pipe.hget(self.keys.task(task_id), "status")
                    pipe.delete(self.keys.task(task_id))
                members = [str(task_id) for task_id in batch]
                pipe.zrem(self.keys.all_tasks, *members)
                pipe.zrem(self.keys.queued_tasks, *members)
                results = await pipe.execute()
            for position, task_id in enumerate(batch):
                status, removed = results[2 * position], results[2 * position + 1]
                if removed:
                    deleted[task_id] = status or QUEUED
        return deleted

    async def prune_index(self, cutoff: float) -> int:
        """Drop index entries whose record has expired; returns how many were dropped."""
        pruned = 0
        for batch in _batches(await self.ids_submitted_before(cutoff), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in batch:
                    pipe.exists(self.keys.task(task_id))
                present = await pipe.execute()
            gone = [str(task_id) for task_id, alive in zip(batch, present, strict=True) if not alive]
            if gone:
                await self.redis.zrem(self.keys.all_tasks, *gone)
                await self.redis.zrem(self.keys.queued_tasks, *gone)
                pruned += len(gone)
        return pruned

    async def take_sweeper_lock(self, seconds: float) -> bool:
        return bool(await self.redis.set(self.keys.sweeper_lock, "1", nx=True, px=int(seconds * 1000)))

    async def outcome_counts(self) -> dict[str, int]:
        counts = cast(dict[str, str], await self.redis.hgetall(self.keys.outcomes))
        return {status: int(counts.get(status, 0)) for status in (DONE, FAILED)}

    async def verdict_counts(self) -> dict[str, int]:
        """Tasks done on this node by the classification of the submitted file."""
        counts = cast(dict[str, str], await self.redis.hgetall(self.keys.verdicts))
        return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}

    async def time_to_report(self) -> tuple[list[tuple[float, int]], float]:
        """The time-to-report histogram of done tasks: cumulative counts by upper bound
        (as Prometheus wants them, infinity last) and the sum of their seconds."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.time_to_report))
        buckets, total = [], 0
        for bound in TIME_TO_REPORT_BUCKETS:
            total += int(raw.get(time_to_report_field(bound), 0))
            buckets.append((bound, total))
        # +Inf from the count of every task: it stays whole if the bucket bounds ever change.
        buckets.append((math.inf, max(total, int(raw.get("count", 0)))))
        return buckets, float(raw.get("sum", 0))

    async def throughput(self, now: float | None = None) -> list[int]:
        """Tasks done in each of the last `THROUGHPUT_INTERVALS` intervals, oldest first; the
        last one is the interval under way."""
        current = int((time.time() if now is None else now) // THROUGHPUT_INTERVAL_SECONDS)
        first = current - THROUGHPUT_INTERVALS + 1
        keys = [self.keys.done_in_interval(interval) for interval in range(first, current + 1)]
        return [int(value or 0) for value in await self.redis.mget(keys)]

    async def analyzer_stats(self) -> dict[str, dict[str, float]]:
        """Per analyzer: runs, errors, limits and seconds, summed over every file analyzed."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.analyzer_stats))
        stats: dict[str, dict[str, float]] = {}
        for field, value in raw.items():
            name, _, measure = field.rpartition(":")
            stats.setdefault(name, {})[measure] = float(value)
        return stats

    async def machine_id(self, regenerate: bool = False) -> tuple[str, int]:
        """This node's license machine id and when it was made: created at first use, kept
        until regenerated."""
        key = self.keys.license
        if regenerate:
            await self.redis.delete(key)
        await self.redis.hsetnx(key, "machine_id", secrets.token_hex(16).upper())
        await self.redis.hsetnx(key, "created", int(time.time()))
        identifier, created = await self.redis.hmget(key, ["machine_id", "created"])
        return str(identifier), int(str(created))

    async def live_celery_workers(self, role: str = "analysis") -> list[str]:
        names = []
        async for key in self.redis.scan_iter(match=self.keys.celery_heartbeat_pattern_of(role)):
            names.append(key.rsplit(":", 1)[-1])
        return names


class SyncTaskStore:
    """Blocking access for the Celery analysis processes."""

    def __init__(self, client: redis.Redis, keys: Keys, retention: Retention):
        self.redis = client
        self.keys = keys
        self.retention = retention
        self._transition = client.register_script(TRANSITION_SCRIPT)
        self._transition_and_read = client.register_script(TRANSITION_AND_READ_SCRIPT)
        self._plan_output = client.register_script(PLAN_OUTPUT_SCRIPT)

    def get(self, task_id: int) -> dict[str, str] | None:
        return self.redis.hgetall(self.keys.task(task_id)) or None  # type: ignore[return-value]

    def _transition_call(
        self, task_id: int, ttl: int, only_if: str, counter: str, fields: dict
    ) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of TRANSITION_SCRIPT for this change to a task."""
        keys = [self.keys.task(task_id), self.keys.queued_tasks, self.keys.outcomes]
        return keys, [ttl, only_if, task_id, counter, *_flatten(fields)]

    def _apply(self, task_id: int, ttl: int, only_if: str, counter: str, fields: dict) -> int:
        keys, args = self._transition_call(task_id, ttl, only_if, counter, fields)
        return int(self._transition(keys=keys, args=args))

    def start(self, task_id: int, worker_identity: dict[str, Any]) -> tuple[int, dict[str, str]]:
        """Mark a queued (or re-delivered) task as analyzing, in one round trip.

        Returns the attempt number (0 when the record is gone, -1 when it was already
        finished or canceled) and the record as it is now."""
        fields = encode_fields({"status": ANALYZING, "started": int(time.time()), **worker_identity})
        reply = self._transition_and_read(
            keys=[self.keys.task(task_id), self.keys.queued_tasks, self.keys.outcomes],
            args=[0, f"{QUEUED},{ANALYZING}", task_id, "attempts", *_flatten(fields)],
        )
        attempt = int(reply[0])
        flat = reply[1] if len(reply) > 1 else []
        return attempt, dict(zip(flat[::2], flat[1::2], strict=True))

    def finish(
        self,
        task_id: int,
        report: Any,
        worker_identity: dict[str, Any],
        now: int,
        extra: dict[str, Any] | None = None,
        bookkeeping: Bookkeeping | None = None,
    ) -> bool:
        """Store the report and mark the task done (only if it is still analyzing).

        `bookkeeping` (the node's analyzer statistics, the search index, the result cache)
        goes in the same round trip, after the transition: with `appendfsync always` each
        round trip that writes waits for one fsync, so a job costs two (start and finish)
        instead of one per concern. A bookkeeping command that fails is logged; it never
        changes the task's outcome."""
        fields = done_fields(report, worker_identity, now, extra)

        queued = []

        def add(pipe: Any) -> None:
            if bookkeeping is not None:
                bookkeeping.commands(pipe, self, task_id, report, now)
                queued.append(True)  # not reached when a command could not be queued

        finished = self._apply_with(task_id, self.retention.done_seconds, ANALYZING, fields, add) > 0
        if not finished and bookkeeping is not None and queued:
            # Rare (the task was deleted or ended meanwhile): the counts of done tasks must
            # agree with the outcome counters, which the refused transition left alone.
            pipe = self.redis.pipeline(transaction=False)
            bookkeeping.count_done(pipe, self.keys, report, now, amount=-1)
            pipe.execute(raise_on_error=False)
        return finished

    def _apply_with(
        self, task_id: int, ttl: int, only_if: str, fields: dict, add: Callable[[Any], None]
    ) -> int:
        """`_apply`, with the commands `add` queues after it, in one round trip. A failed
        added command is logged; it never changes the transition's outcome. The pipeline is
        not a transaction: the added commands go even when the transition does not apply (a
        task deleted meanwhile); what they write then is harmless (search drops entries of
        tasks that are gone, the cache analyzes again when its entry's task is gone), or taken
        back by the caller (`finish` and the counts of done tasks)."""
        keys, args = self._transition_call(task_id, ttl, only_if, "", fields)
        pipe = self.redis.pipeline(transaction=False)
        # EVALSHA itself, not the Script object: in a pipeline, that asks SCRIPT EXISTS first,
        # one more round trip. A server that lost the script (restarted, flushed) answers
        # NOSCRIPT; then the script is loaded and run alone (the added commands went).
        pipe.evalsha(self._transition.sha, len(keys), *keys, *args)
        try:
            add(pipe)
        except Exception as error:  # a report of an unexpected shape: the transition alone
            log.warning("task %s: bookkeeping not written: %s: %s", task_id, type(error).__name__, error)
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(self._transition.sha, len(keys), *keys, *args)
        replies = pipe.execute(raise_on_error=False)
        if isinstance(replies[0], redis.exceptions.NoScriptError):
            replies[0] = self._transition(keys=keys, args=args)
        if isinstance(replies[0], Exception):
            raise replies[0]
        failed = [reply for reply in replies[1:] if isinstance(reply, Exception)]
        if failed:
            log.warning("task %s: %d bookkeeping write(s) failed: %s", task_id, len(failed), failed[0])
        return int(replies[0])

    def plan_output(self, task_id: int, output: str, state: dict[str, Any]) -> bool:
        """Record an output's first state, unless the task is gone or the output was planned
        already (a repeated end of the same task never resets a delivered output)."""
        return bool(self._plan_output(keys=[self.keys.task(task_id)], args=[
            f"{OUTPUT_FIELD_PREFIX}{output}", orjson.dumps(state).decode()
        ]))  # fmt: skip

    def end_attempt(self, task_id: int, output: str, state: dict[str, Any], outcome: str) -> bool:
        """After a delivery attempt, in one round trip: the output's state in the task (if
        the task still exists), its count in the node's statistics, and its lock released.
        (On a server that lost its scripts the lock goes just before the state is written: a
        copy of the job arriving in that instant could deliver again, which receivers that
        dedupe on X-Scanhub-Task-Id absorb, as with every at-least-once delivery.)"""
        fields = {f"{OUTPUT_FIELD_PREFIX}{output}": orjson.dumps(state).decode()}

        def add(pipe: Any) -> None:
            self.count_output(output, outcome, pipe)
            pipe.delete(self.keys.output_lock(task_id, output))

        return self._apply_with(task_id, 0, "", fields, add) > 0

    def count_output(self, output: str, outcome: str, pipe: Any = None) -> None:
        """Count one attempt's outcome in the node's output statistics (queued in `pipe` if given)."""
        (self.redis if pipe is None else pipe).hincrby(self.keys.output_stats, f"{output}:{outcome}", 1)

    def lock_output(self, task_id: int, output: str, seconds: float) -> bool:
        """One delivery attempt of an output at a time, even if its job is delivered twice."""
        key = self.keys.output_lock(task_id, output)
        return bool(self.redis.set(key, "1", nx=True, px=int(seconds * 1000)))

    def unlock_output(self, task_id: int, output: str) -> None:
        self.redis.delete(self.keys.output_lock(task_id, output))

    def cached_task(self, cache_key: str) -> int | None:
        found = self.redis.get(self.keys.cached_result(cache_key))
        return int(found) if found else None

    def fail(self, task_id: int, reason: str, now: int, worker_identity=None, only_if: str = "") -> bool:
        """Mark the task failed (only if its status is one of `only_if`, when given)."""
        fields = failed_fields(reason, now, worker_identity)
        return self._apply(task_id, self.retention.failed_seconds, only_if, "", fields) > 0

    def heartbeat(self, hostname: str, ttl_seconds: float, role: str = "analysis") -> None:
        key = self.keys.celery_heartbeat(hostname, role)
        self.redis.set(key, str(time.time()), px=int(ttl_seconds * 1000))

    def live_celery_workers(self, role: str = "analysis") -> list[str]:
        """Hostnames of the Celery workers of this node (analysis or outputs) whose
        heartbeat has not expired."""
        keys = self.redis.scan_iter(match=self.keys.celery_heartbeat_pattern_of(role))
        return [str(key).rsplit(":", 1)[-1] for key in keys]


def _flatten(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _batches(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def analyzer_stats_commands(pipe: Any, keys: Keys, report: list[dict[str, Any]]) -> None:
    """Add each analyzer's runs, outcomes and seconds in `report` to the node's totals."""
    totals: dict[str, float] = {}
    for entry in report:
        for run in entry.get("info", {}).get("analyzers", []):
            name = run["name"]
            totals[f"{name}:runs"] = totals.get(f"{name}:runs", 0) + 1
            totals[f"{name}:seconds"] = totals.get(f"{name}:seconds", 0) + run["duration_ms"] / 1000
            if run["outcome"] != "ok":
                key = f"{name}:{run['outcome']}s"
                totals[key] = totals.get(key, 0) + 1
    for field, amount in totals.items():
        pipe.hincrbyfloat(keys.analyzer_stats, field, amount)


@dataclass(frozen=True)
class Bookkeeping:
    """The writes that go with a task's report when it is stored: analyzer statistics (when
    the report was just `analyzed`, not copied from the cache), the search index (by the
    hashes of every file in the report, from `submitted`), and the result cache's entry
    (`cache_key` for `cache_seconds`, when the report may be cached)."""

    submitted: float
    analyzed: bool = True
    cache_key: str | None = None
    cache_seconds: int = 0
    accepted: float | None = None  # when the task was accepted, to the millisecond
    finished: float = dataclasses.field(default_factory=time.time)

    def commands(self, pipe: Any, store: SyncTaskStore, task_id: int, report: Any, now: float) -> None:
        keys = store.keys
        if self.analyzed:
            analyzer_stats_commands(pipe, keys, report)
        ttl = store.retention.longest_record_seconds
        sample_index_commands(pipe, keys, task_id, self.submitted, report_digests(report), ttl)
        if self.cache_key is not None and self.cache_seconds > 0:
            pipe.set(keys.cached_result(self.cache_key), str(task_id), ex=self.cache_seconds)
        self.count_done(pipe, keys, report, now)

    def count_done(self, pipe: Any, keys: Keys, report: Any, now: float, amount: int = 1) -> None:
        """The counts of done tasks (`amount` -1: take them back): by verdict, by interval,
        and by time to report when the acceptance time is known (tasks from before it was
        recorded have none)."""
        done_counter_commands(pipe, keys, report, now, amount)
        if self.accepted is not None:
            # Accepted by the API, finished by a Celery worker: two clocks, kept in step by
            # NTP. A finish that seems to come first counts as immediate.
            time_to_report_commands(pipe, keys, max(0.0, self.finished - self.accepted), amount)


def classification_code(entry: Any) -> int:
    """An entry's classification code (0 unknown ... 3 malicious); 0 when it has none usable
    (a site's own engine may store reports of any shape)."""
    classification = entry.get("classification") if isinstance(entry, dict) else None
    code = classification.get("classification", 0) if isinstance(classification, dict) else 0
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def entry_verdict(entry: Any) -> str:
    """An entry's classification by name: one of `VERDICTS` (unknown for a code out of range)."""
    code = classification_code(entry)
    return VERDICTS[code] if 0 <= code < len(VERDICTS) else VERDICTS[0]


def verdict_of(report: Any) -> str:
    """The verdict of a report's submitted file (its first entry): one of `VERDICTS`."""
    return entry_verdict(report[0] if isinstance(report, list) and report else None)


def time_to_report_field(bound: float) -> str:
    """The hash field counting the tasks of one time-to-report bucket: `le:0.05` ... `le:+Inf`."""
    return "le:+Inf" if math.isinf(bound) else f"le:{bound:g}"


def time_to_report_bucket(seconds: float) -> str:
    """The field of the smallest time-to-report bucket holding `seconds`."""
    return time_to_report_field(
        next((bound for bound in TIME_TO_REPORT_BUCKETS if seconds <= bound), math.inf)
    )


def time_to_report_commands(pipe: Any, keys: Keys, seconds: float, amount: int = 1) -> None:
    """Count a done task's time from acceptance to stored report (`amount` -1: take it back)."""
    pipe.hincrby(keys.time_to_report, time_to_report_bucket(seconds), amount)
    pipe.hincrby(keys.time_to_report, "count", amount)
    pipe.hincrbyfloat(keys.time_to_report, "sum", round(amount * seconds, 6))


def done_counter_commands(pipe: Any, keys: Keys, report: Any, now: float, amount: int = 1) -> None:
    """Count a done task (`amount` -1: take it back) by its verdict, and in the throughput
    interval of `now`."""
    pipe.hincrby(keys.verdicts, verdict_of(report), amount)
    counter = keys.done_in_interval(int(now // THROUGHPUT_INTERVAL_SECONDS))
    pipe.incrby(counter, amount)
    pipe.expire(counter, (THROUGHPUT_INTERVALS + 1) * THROUGHPUT_INTERVAL_SECONDS)
