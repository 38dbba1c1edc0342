"""`make run`: a whole local cluster as processes, stopped cleanly by Ctrl-C.

Starts a Redis-compatible server per Worker node (unless REDIS_URL is set, in which
case every node shares it under its own key prefix and queue), then each Worker node's
API and Celery worker (ports 8081, 8082, ...), then the Hub in front of them on 8080,
waits for everything to be healthy and prints where to send files. From then on it
supervises: a process that dies is started again after a delay that doubles while it keeps
dying, and the other processes carry on untouched.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from common.settings import TRUE_WORDS
from deploy.processes import Managed, WorkerNode, hub_env, start_hub, start_redis, wait_hub_ready

HUB_PORT = 8080
WORKER_BASE_PORT = 8081

log = logging.getLogger("scanhub.launcher")


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
    def tls(self) -> bool:
        """`SCANHUB_TLS=on`: every service serves HTTPS with a certificate from one CA in
        <state dir>/tls (clients: `curl --cacert <state dir>/tls/ca.pem`)."""
        return self.environment.get("SCANHUB_TLS", "").strip().lower() in TRUE_WORDS

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def ca_file(self) -> Path | None:
        return self.state_dir / "tls" / "ca.pem" if self.tls else None

    @property
    def hub_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.hub_port}"

    def processes(self) -> list[Managed]:
        parts = [self.hub, *(part for node in self.nodes for part in (node.api, node.celery, node.outputs))]
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
                    **self.tls_environment(),
                }
            )
            url = f"{self.scheme}://127.0.0.1:{port}"
            node = WorkerNode(name, url, env, log_dir=self.log_dir, ca_file=self.ca_file)
            self.nodes.append(node)
            node.start(wait=False)
        hub_environ = hub_environment(
            self.environment, self.hub_port, host, self.nodes, self.state_dir / "hub-spool"
        )
        hub_environ.update(self.tls_environment())
        self.hub = start_hub(hub_environ, log_dir=self.log_dir)
        for node in self.nodes:
            node.wait_healthy(90)
        wait_hub_ready(self.hub, self.hub_url, timeout=30, ca_file=self.ca_file)
        return self

    def tls_environment(self) -> dict[str, str]:
        if not self.tls:
            return {}
        return {"SCANHUB_TLS": "on", "SCANHUB_TLS_DIR": str(self.state_dir / "tls")}

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        for node in self.nodes:
            node.stop()
        for server in self.redis_servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher: %(message)s", stream=sys.stderr)
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
        print_banner(cluster.hub_url, cluster.nodes, state_dir, cluster.ca_file)
        started = True
        Supervisor(cluster.processes()).run(lambda: stopping, time.sleep)
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


class Process(Protocol):
    """What the supervisor needs of a child process (`deploy.processes.Managed` has it)."""

    name: str

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def running(self) -> bool: ...

    def restart(self) -> object: ...


@dataclass
class Backoff:
    """The delays before restarting one process: `first`, doubling with each death in a row, up to `longest`.

    A run of at least `stable_after` seconds counts as a recovery, so the next death starts
    from `first` again; a process that keeps dying at once is retried every `longest` seconds
    for as long as the launcher runs.
    """

    first: float = 0.5
    longest: float = 30.0
    stable_after: float = 60.0
    quick_deaths: int = 0  # deaths in a row, each after a run shorter than `stable_after`

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.stable_after:
            self.quick_deaths = 0
        delay = min(self.longest, self.first * 2 ** min(self.quick_deaths, 32))
        self.quick_deaths += 1
        return delay


@dataclass
class Supervised:
    process: Process
    backoff: Backoff
    started_at: float
    restart_at: float | None = None  # set while the process is dead and waiting for its delay


class Supervisor:
    """Restarts the cluster's processes that die, each on its own backoff, one log line per event.

    `poll` does one round and never blocks; `run` polls until told to stop. The clock and the
    sleep are injectable, so the schedule can be checked without waiting for it.
    """

    def __init__(
        self,
        processes: Sequence[Process],
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[], Backoff] = Backoff,
    ):
        self.clock = clock
        now = clock()
        self.entries = [Supervised(process, backoff(), now) for process in processes]

    def run(
        self, stopping: Callable[[], bool], sleep: Callable[[float], object], interval: float = 0.25
    ) -> None:
        """Poll every `interval` seconds (sooner when a restart is due) until `stopping()`."""
        while not stopping():
            sleep(min(interval, self.poll(stopping)))

    def poll(self, stopping: Callable[[], bool] = lambda: False) -> float:
        """Notice deaths and restart what is due (nothing once `stopping()`).

        Returns the seconds until the next restart falls due (infinity if none is waiting).
        """
        now = self.clock()
        waits = [float("inf")]
        for entry in self.entries:
            if entry.restart_at is None and not entry.process.running():
                self.died(entry, now)
            if entry.restart_at is not None and entry.restart_at <= now and not stopping():
                self.restart(entry, now)
            if entry.restart_at is not None:
                waits.append(max(0.0, entry.restart_at - now))
        return min(waits)

    def died(self, entry: Supervised, now: float) -> None:
        ran_for = now - entry.started_at
        delay = entry.backoff.next_delay(ran_for)
        entry.restart_at = now + delay
        process, deaths = entry.process, entry.backoff.quick_deaths
        what = f"{process.name} (pid {process.pid}) {describe_exit(process.returncode)} after {ran_for:.1f} s"
        if deaths > 1:
            log.warning(
                "%s, its %s death in a row within %.0f s of starting; still retrying: restarting in %.1f s",
                what, ordinal(deaths), entry.backoff.stable_after, delay,
            )  # fmt: skip
        else:
            log.warning("%s; restarting in %.1f s", what, delay)

    def restart(self, entry: Supervised, now: float) -> None:
        entry.restart_at = None
        entry.started_at = now
        try:
            entry.process.restart()
        except OSError as error:  # could not even start: counts as a death at once
            delay = entry.backoff.next_delay(0)
            entry.restart_at = now + delay
            log.warning("%s could not be started: %s; retrying in %.1f s", entry.process.name, error, delay)
            return
        log.warning("%s restarted (pid %d)", entry.process.name, entry.process.pid)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


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


def print_banner(hub_url: str, nodes: list[WorkerNode], state_dir: Path, ca_file: Path | None = None) -> None:
    curl = f"curl --cacert {ca_file}" if ca_file else "curl"
    lines = [
        "",
        "scanhub is running.",
        f"  Hub:  {hub_url}/api/tiscale/v1   (Worker status: {hub_url}/api/hub/v1/workers)",
        *(f"  {node.name}: {node.url}/api/tiscale/v1" for node in nodes),
        f"  state and spools: {state_dir}",
        "",
        "Send a file to the Hub:",
        f"  {curl} -F file=@/bin/ls {hub_url}/api/tiscale/v1/upload",
        "It answers with a task_url on the Worker that took the file; poll that until processed:",
        f"  {curl} '<task_url>?full=true'",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
