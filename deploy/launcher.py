"""`make run`: a whole local cluster as processes, stopped cleanly by Ctrl-C.

Starts a Redis-compatible server per Worker node (unless REDIS_URL is set, in which
case every node shares it under its own key prefix and queue), then each Worker node's
API and Celery worker, waits for them to be healthy and prints where to send files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from deploy.processes import Managed, WorkerNode, start_redis

WORKER_BASE_PORT = 8081


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SCANHUB_WORKERS", "1")))
    parser.add_argument("--worker-port", type=int, default=WORKER_BASE_PORT)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="scanhub-"))
    temporary = args.state_dir is None
    shared_redis = os.environ.get("REDIS_URL")
    redis_servers: list[Managed] = []
    nodes: list[WorkerNode] = []
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for index in range(args.workers):
            name = f"worker{index + 1}"
            port = args.worker_port + index
            node_dir = state_dir / name
            spool_dir = node_dir / "spool"
            spool_dir.mkdir(parents=True, exist_ok=True)
            extra = {}
            if shared_redis:
                redis_url = shared_redis
                extra = {"SCANHUB_KEY_PREFIX": f"scanhub-{name}", "SCANHUB_CELERY_QUEUE": f"scanhub-{name}"}
            else:
                server, redis_url = start_redis(node_dir / "redis")
                redis_servers.append(server)
            env = dict(os.environ)
            env.pop("REDIS_URL", None)
            env.update(
                {
                    "SCANHUB_REDIS_URL": redis_url,
                    "SCANHUB_HOST": os.environ.get("SCANHUB_HOST", "127.0.0.1"),
                    "SCANHUB_PORT": str(port),
                    "SCANHUB_SPOOL_DIR": str(spool_dir),
                    "PYTHONUNBUFFERED": "1",
                    **extra,
                }
            )
            node = WorkerNode(name, f"http://127.0.0.1:{port}", env, log_dir=None)
            nodes.append(node)
            node.start(wait=False)
        for node in nodes:
            node.wait_healthy(90)
        print_banner(nodes, state_dir)
        while not stopping:
            for node in nodes:
                for part in (node.api, node.celery):
                    if part is not None and not part.running():
                        print(f"\n{part.name} exited unexpectedly; stopping the cluster.", file=sys.stderr)
                        stopping = True
            time.sleep(0.5)
        return 0
    except (TimeoutError, RuntimeError) as error:
        print(f"start-up failed: {error}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping scanhub ...", file=sys.stderr)
        for node in nodes:
            node.stop()
        for server in redis_servers:
            server.stop()
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)
        print("stopped.", file=sys.stderr)


def print_banner(nodes: list[WorkerNode], state_dir: Path) -> None:
    first = nodes[0].url
    lines = [
        "",
        "scanhub is running.",
        *(f"  {node.name}: {node.url}/api/tiscale/v1" for node in nodes),
        f"  state and spools: {state_dir}",
        "",
        "Send a file:",
        f"  curl -F file=@/bin/ls {first}/api/tiscale/v1/upload",
        "Then poll the task_url it answers with, e.g.:",
        f"  curl {first}/api/tiscale/v1/task/1",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
