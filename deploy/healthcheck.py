"""Container health probes: `python -m deploy.healthcheck http URL` or `python -m deploy.healthcheck celery`.

Slim images have no curl; these use only what scanhub already depends on. Exit 0 = healthy.
"""

from __future__ import annotations

import socket
import sys
import urllib.request


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def celery_alive() -> bool:
    """This container's Celery worker (`--hostname <name>@%h`) has a live heartbeat in Redis."""
    import redis

    from worker.settings import load_worker_settings
    from worker.store import Keys

    settings = load_worker_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    suffix = f"@{socket.gethostname()}"
    pattern = Keys(settings.key_prefix).celery_heartbeat_pattern
    return any(key.decode().endswith(suffix) for key in client.scan_iter(match=pattern))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "http":
        return 0 if http_ok(argv[1]) else 1
    if argv == ["celery"]:
        return 0 if celery_alive() else 1
    print("usage: python -m deploy.healthcheck http URL | celery", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
