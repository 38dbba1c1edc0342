"""The cluster's Redis keeps its data in an append-only file, so a restart does not empty the queue."""

from __future__ import annotations

import redis

from deploy.processes import start_redis


def test_redis_started_again_on_the_same_directory_has_its_queue_back(tmp_path):
    server, url = start_redis(tmp_path / "redis")
    try:
        redis.Redis.from_url(url).rpush("scanhub", "job-1", "job-2")
    finally:
        server.stop()
    # A new port, as the next `make run --state-dir` would choose.
    server, url = start_redis(tmp_path / "redis")
    try:
        assert redis.Redis.from_url(url).lrange("scanhub", 0, -1) == [b"job-1", b"job-2"]
    finally:
        server.stop()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()
