"""`make run`: a whole local cluster as processes, stopped cleanly by Ctrl-C.

Starts a Redis-compatible server per Worker node (unless REDIS_URL is set, in which
case every node shares it under its own key prefix and queue), then each Worker node's
API and Celery worker (ports 8081, 8082, ...), then the Hub in front of them on 8080,
waits for everything to be healthy and prints where to send files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.processes import Managed, WorkerNode, hub_env, start_hub, start_redis, wait_hub_ready

HUB_PORT = 8080
WORKER_BASE_PORT = 8081


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SCANHUB_WORKERS", "2")))
    parser.add_argument("--hub-port", type=int, default=HUB_PORT)
    parser.add_argument("--worker-port", type=int, default=WORKER_BASE_PORT)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary directory")
    return parser.parse_args(argv)


@dataclass
class LocalCluster:
    """Redis servers, Worker nodes and the Hub as processes, started and stopped together.

    `make run` and the benchmarks both start the cluster this way.
    """

    state_dir: Path
    workers: int = 2
    hub_port: int = HUB_PORT
    worker_port: int = WORKER_BASE_PORT
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None
    redis_servers: list[Managed] = field(default_factory=list)
    nodes: list[WorkerNode] = field(default_factory=list)
    hub: Managed | None = None

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    def processes(self) -> list[Managed]:
        parts = [self.hub, *(part for node in self.nodes for part in (node.api, node.celery))]
        return [part for part in (*parts, *self.redis_servers) if part is not None]

    def start(self) -> LocalCluster:
        shared_redis = self.environment.get("REDIS_URL")
        host = self.environment.get("SCANHUB_HOST", "127.0.0.1")
        for index in range(self.workers):
            name = f"worker{index + 1}"
            port = self.worker_port + index
            node_dir = self.state_dir / name
            spool_dir = node_dir / "spool"
            spool_dir.mkdir(parents=True, exist_ok=True)
            extra = {}
            if shared_redis:
                redis_url = shared_redis
                extra = {"SCANHUB_KEY_PREFIX": f"scanhub-{name}", "SCANHUB_CELERY_QUEUE": f"scanhub-{name}"}
            else:
                server, redis_url = start_redis(node_dir / "redis", log_dir=self.log_dir)
                self.redis_servers.append(server)
            env = dict(self.environment)
            env.pop("REDIS_URL", None)
            env.update(
                {
                    "SCANHUB_REDIS_URL": redis_url,
                    "SCANHUB_HOST": host,
                    "SCANHUB_PORT": str(port),
                    "SCANHUB_SPOOL_DIR": str(spool_dir),
                    "PYTHONUNBUFFERED": "1",
                    **extra,
                }
            )
            node = WorkerNode(name, f"http://127.0.0.1:{port}", env, log_dir=self.log_dir)
            self.nodes.append(node)
            node.start(wait=False)
        hub_environ = hub_environment(
            self.environment, self.hub_port, host, self.nodes, self.state_dir / "hub-spool"
        )
        self.hub = start_hub(hub_environ, log_dir=self.log_dir)
        for node in self.nodes:
            node.wait_healthy(90)
        wait_hub_ready(self.hub, self.hub_url, timeout=30)
        return self

    def first_exited(self) -> Managed | None:
        return next((part for part in self.processes() if not part.running()), None)

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        for node in self.nodes:
            node.stop()
        for server in self.redis_servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="scanhub-"))
    temporary = args.state_dir is None
    cluster = LocalCluster(state_dir, args.workers, args.hub_port, args.worker_port)
    stopping = False
    started = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True
        if not started:
            raise KeyboardInterrupt  # interrupt start-up at once rather than after it

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        cluster.start()
        print_banner(cluster.hub_url, cluster.nodes, state_dir)
        started = True
        while not stopping:
            exited = cluster.first_exited()
            if exited is not None:
                print(f"\n{exited.name} exited unexpectedly; stopping the cluster.", file=sys.stderr)
                stopping = True
            time.sleep(0.5)
        return 0
    except (TimeoutError, RuntimeError) as error:
        print(f"start-up failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        print("\nstopping scanhub ...", file=sys.stderr)
        cluster.stop()
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)
        print("stopped.", file=sys.stderr)


def hub_environment(
    environment: dict[str, str], port: int, host: str, nodes: list[WorkerNode], spool_dir: Path
) -> dict[str, str]:
    """The Hub gets the Workers' URLs, and presents the first submit token to them if any is set."""
    env = dict(environment)
    env.pop("REDIS_URL", None)
    extra = {"SCANHUB_HOST": host}
    submit_tokens = environment.get("SCANHUB_SUBMIT_TOKENS", "").replace(",", " ").split()
    if submit_tokens and "SCANHUB_WORKER_TOKENS" not in environment:
        extra["SCANHUB_WORKER_TOKENS"] = submit_tokens[0]
    return hub_env(env, port, [node.url for node in nodes], spool_dir, **extra)


def print_banner(hub_url: str, nodes: list[WorkerNode], state_dir: Path) -> None:
    lines = [
        "",
        "scanhub is running.",
        f"  Hub:  {hub_url}/api/tiscale/v1   (Worker status: {hub_url}/api/hub/v1/workers)",
        *(f"  {node.name}: {node.url}/api/tiscale/v1" for node in nodes),
        f"  state and spools: {state_dir}",
        "",
        "Send a file to the Hub:",
        f"  curl -F file=@/bin/ls {hub_url}/api/tiscale/v1/upload",
        "It answers with a task_url on the Worker that took the file; poll that, e.g.:",
        f"  curl '{nodes[0].url}/api/tiscale/v1/task/1?full=true'",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
