"""Container health probes; exit 0 = healthy. Slim images have no curl: these use only what scanhub has.

    python -m deploy.healthcheck http URL     URL answers 200 (readiness: the service can do its job)
    python -m deploy.healthcheck alive URL    URL answers at all, even 503 (liveness: the process is not hung)
    python -m deploy.healthcheck celery       this container's Celery worker renewed its heartbeat lately

Docker marks a failing container unhealthy but never restarts it. With `--kill-after N`
before the mode, N unresponsive results in a row (no HTTP answer; no heartbeat although Redis
answers) SIGKILL the container's main process, so that its restart policy replaces a hung
process. That needs an init as PID 1 (compose `init: true`): PID 1 itself ignores SIGKILL
from inside its container. An answer that is merely unhealthy (a 503, an unreachable Redis)
never counts: restarting this process would not mend what it depends on.
"""

from __future__ import annotations

import enum
import os
import signal
import socket
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

TIMEOUT_SECONDS = 5
INITS = {"docker-init", "tini", "dumb-init", "catatonit"}
STATE_FILE = Path(tempfile.gettempdir()) / "scanhub-healthcheck-unresponsive"
USAGE = "usage: python -m deploy.healthcheck [--kill-after N] http URL | alive URL | celery"


class Result(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # the process answers, but not well
    UNRESPONSIVE = "unresponsive"  # the process does not answer: hung or gone


def tls_context() -> ssl.SSLContext:
    """Trusts scanhub's own CA when this container's service made its certificate from one
    (`SCANHUB_TLS_CA_DIR` or `SCANHUB_TLS_DIR`), else the system's CAs."""
    directory = os.environ.get("SCANHUB_TLS_CA_DIR") or os.environ.get("SCANHUB_TLS_DIR")
    ca_file = Path(directory) / "ca.pem" if directory else None
    return ssl.create_default_context(cafile=str(ca_file) if ca_file and ca_file.exists() else None)


def http_result(url: str) -> Result:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=tls_context()) as response:
            return Result.HEALTHY if response.status == 200 else Result.UNHEALTHY
    except urllib.error.HTTPError:
        return Result.UNHEALTHY
    except OSError:
        return Result.UNRESPONSIVE


def celery_result(role: str = "analysis") -> Result:
    """This container's Celery worker (`--hostname <name>@%h`) of `role` (analysis, or
    outputs for `celery outputs`) has a heartbeat key in Redis.

    The worker's main loop renews that key every `celery_heartbeat_seconds` with an expiry
    of three intervals, so the key vanishes once the worker is frozen or dead.
    """
    import redis

    from worker.settings import load_worker_settings
    from worker.store import Keys

    settings = load_worker_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=TIMEOUT_SECONDS)
    suffix = f"@{socket.gethostname()}"
    pattern = Keys(settings.key_prefix).celery_heartbeat_pattern_of(role)
    try:
        beating = any(key.decode().endswith(suffix) for key in client.scan_iter(match=pattern))
    except redis.RedisError as error:
        print(f"Redis at {settings.redis_url} unusable: {error}", file=sys.stderr)
        return Result.UNHEALTHY
    if not beating:
        print(f"no Celery heartbeat for *{suffix} in Redis", file=sys.stderr)
    return Result.HEALTHY if beating else Result.UNRESPONSIVE


def check(argv: list[str]) -> Result | None:
    if len(argv) == 2 and argv[0] == "http":
        return http_result(argv[1])
    if len(argv) == 2 and argv[0] == "alive":
        return Result.UNRESPONSIVE if http_result(argv[1]) is Result.UNRESPONSIVE else Result.HEALTHY
    if argv == ["celery"]:
        return celery_result()
    if argv == ["celery", "outputs"]:
        return celery_result("outputs")
    return None


def main_processes(proc: Path) -> list[int]:
    """The processes an init (PID 1) started in this PID namespace: the container's service."""
    pids = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if len(fields) > 1 and fields[1] == "1":
            pids.append(int(stat.parent.name))
    return sorted(pids)


def kill_if_stuck(
    result: Result,
    kill_after: int,
    proc: Path = Path("/proc"),
    state_file: Path = STATE_FILE,
    kill: Callable[[int, int], None] = os.kill,
) -> None:
    """Count unresponsive results in a row for the current main process; SIGKILL it at `kill_after`.

    The count is kept with the process ids it is about, so a restarted process starts from 0.
    """
    try:
        init = (proc / "1" / "comm").read_text().strip()
    except OSError:
        init = ""
    if init not in INITS:
        print(f"--kill-after needs an init as PID 1 (compose `init: true`), not {init!r}", file=sys.stderr)
        return
    targets = main_processes(proc)
    key = ",".join(map(str, targets))
    try:
        previous_key, _, previous = state_file.read_text().partition(" ")
        count = int(previous) if previous_key == key else 0
    except (OSError, ValueError):
        count = 0
    count = count + 1 if result is Result.UNRESPONSIVE else 0
    if targets and count >= kill_after:
        print(f"unresponsive {count} times in a row: killing pid {key} for a restart", file=sys.stderr)
        for pid in targets:
            kill(pid, signal.SIGKILL)
        count = 0
    try:
        state_file.write_text(f"{key} {count}")
    except OSError as error:
        print(f"cannot keep the count in {state_file}: {error}", file=sys.stderr)


def main(argv: list[str]) -> int:
    kill_after = 0
    if len(argv) > 2 and argv[0] == "--kill-after" and argv[1].isdigit() and int(argv[1]) > 0:
        kill_after, argv = int(argv[1]), argv[2:]
    result = check(argv)
    if result is None:
        print(USAGE, file=sys.stderr)
        return 2
    if kill_after:
        kill_if_stuck(result, kill_after)
    return 0 if result is Result.HEALTHY else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
