"""The search index written with a new task: one round trip, the same entries the finish writes."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import fakeredis

from worker.settings import WorkerSettings
from worker.store import Keys, TaskStore


def digests_of(content: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, content).hexdigest() for name in ("md5", "sha1", "sha256")}


async def test_an_indexed_create_makes_the_task_findable_by_each_hash_with_the_records_lifetime(tmp_path):
    settings = WorkerSettings(spool_dir=tmp_path)
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TaskStore(client, Keys(), settings.retention())
    digests = digests_of(b"sample")
    now = int(time.time())
    ttl = settings.retention().longest_record_seconds
    fields: dict[str, Any] = dict(digests)
    stale = await store.create(now - ttl - 10, indexed=True, file_name="old", **fields)
    task_id = await store.create(now, indexed=True, file_name="a.bin", **fields)
    other: dict[str, Any] = digests_of(b"other")
    unindexed = await store.create(now, file_name="b.bin", **other)

    for digest in digests.values():
        sha256 = await store.sha256_of(digest)
        assert sha256 == digests["sha256"], digest
        found = await store.search(sha256, 10)
        # The entry older than any record can live was trimmed when the new one came.
        assert [(entry["task_id"], entry["found_as"]) for entry in found] == [(task_id, "file")], digest
    assert stale != task_id
    assert 0 < await client.ttl(Keys().sample(digests["sha256"])) <= ttl
    assert 0 < await client.ttl(Keys().digest_alias(digests["md5"])) <= ttl
    assert await store.search(digests_of(b"other")["sha256"], 10) == []
    assert (await store.get(unindexed) or {}).get("file_name") == "b.bin"
    assert (await store.get(task_id) or {}).get("sha256") == digests["sha256"]
