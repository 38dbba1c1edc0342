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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from common.settings import TRUE_WORDS
from deploy.processes import (
    Managed,
    ProcessExited,
    WorkerNode,
    hub_env,
    port_free,
    ports_free,
    start_hub,
    start_redis,
    stop_services_then_redis,
    wait_hub_ready,
)

HUB_PORT = 8080
WORKER_BASE_PORT = 8081

log = logging.getLogger("scanhub.launcher")


def env_port(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{name} must be a port number (1-65535), not {value!r}")
    return int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Start a local scanhub cluster (Redis, Worker nodes, a Hub) and supervise it "
        'until Ctrl-C. Pass options through make as `make run ARGS="--verbose --hub-port 9080"`.'
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("SCANHUB_WORKERS", "2")),
        help="Worker nodes to start (env SCANHUB_WORKERS; default 2)",
    )
    parser.add_argument(
        "--hub-port",
        type=int,
        default=None,
        help=f"the Hub's port (env SCANHUB_HUB_PORT; default {HUB_PORT})",
    )
    parser.add_argument(
        "--worker-port",
        type=int,
        default=None,
        help=f"the first Worker's port; Worker N listens on this + N - 1 (env SCANHUB_WORKER_PORT; "
        f"default {WORKER_BASE_PORT})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where Redis data, spools and logs go; kept and reused across runs "
        "(default: a temporary directory, removed at exit)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="also stream every process's log to this terminal (they always go to <state dir>/logs)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # The variables are read only when the options are not given.
    if args.hub_port is None:
        args.hub_port = env_port("SCANHUB_HUB_PORT", HUB_PORT)
    if args.worker_port is None:
        args.worker_port = env_port("SCANHUB_WORKER_PORT", WORKER_BASE_PORT)
    return args


def free_block(host: str, count: int, avoid: set[int], start: int) -> int:
    """The first port from `start` up (by hundreds) with `count` free ports in a row."""
    for first in range(start, 65536 - count, 100):
        ports = range(first, first + count)
        if not avoid & set(ports) and ports_free(host, ports):
            return first
    raise RuntimeError("no free ports found")


def busy_port_message(host: str, hub_port: int, worker_port: int, workers: int) -> str | None:
    """What to tell the user when a port the cluster needs is taken; None when all are free."""
    wanted = {hub_port: "the Hub", **{worker_port + n: f"Worker {n + 1}" for n in range(workers)}}
    busy = [(port, what) for port, what in wanted.items() if not port_free(host, port)]
    if not busy:
        return None
    taken = ", ".join(f"port {port} ({what})" for port, what in busy)
    which = " or ".join(f"sport = :{port}" for port, _ in busy)
    lines = [
        f"scanhub cannot start: {taken} {'is' if len(busy) == 1 else 'are'} already in use on {host}.",
        f"Stop what listens there (`ss -ltnp '{which}'` names it), or choose free ports:",
    ]
    try:
        hub = hub_port if port_free(host, hub_port) else free_block(host, 1, set(wanted), hub_port + 1000)
        workers_first = worker_port
        if any(port != hub_port for port, _ in busy):
            workers_first = free_block(host, workers, set(wanted) | {hub}, worker_port + 1000)
    except RuntimeError:  # nothing free above them: the user picks
        return "\n".join([*lines, "  SCANHUB_HUB_PORT=<port> SCANHUB_WORKER_PORT=<port> make run"])
    return "\n".join(
        [
            *lines,
            f"  SCANHUB_HUB_PORT={hub} SCANHUB_WORKER_PORT={workers_first} make run",
            f"  (or: .venv/bin/python -m deploy.launcher --hub-port {hub} --worker-port {workers_first})",
        ]
    )


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
                    # The Hub's status page follows its uploads' task_urls on the Workers.
                    "SCANHUB_CORS_ORIGINS": self.environment.get(
                        "SCANHUB_CORS_ORIGINS",
                        f"{self.hub_url} {self.scheme}://localhost:{self.hub_port}",
                    ),
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
        hub = [self.hub] if self.hub is not None else []
        stop_services_then_redis(
            [*hub, *(part for node in self.nodes for part in node.parts())], self.redis_servers
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher: %(message)s", stream=sys.stderr)
    host = os.environ.get("SCANHUB_HOST", "127.0.0.1")
    busy = busy_port_message(host, args.hub_port, args.worker_port, args.workers)
    if busy:
        print(busy, file=sys.stderr)
        return 1
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="scanhub-"))
    temporary = args.state_dir is None
    log_dir = state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(state_dir, args.workers, args.hub_port, args.worker_port, log_dir=log_dir)
    follower = LogFollower(log_dir) if args.verbose else None
    stopping = False
    started = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True
        if not started:
            raise KeyboardInterrupt  # interrupt start-up at once rather than after it

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(
        f"starting scanhub: {args.workers} Worker node(s) and a Hub; logs in {log_dir} ...", file=sys.stderr
    )
    try:
        if follower is not None:
            follower.start()
        cluster.start()
        print_banner(cluster, temporary)
        started = True
        Supervisor(cluster.processes()).run(lambda: stopping, time.sleep)
        return 0
    except (TimeoutError, RuntimeError) as error:
        print(f"start-up failed: {error}", file=sys.stderr)
        logs = failure_logs(cluster, error)
        if logs:
            print(logs, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        # A second Ctrl-C while stopping would leave processes behind: stopping has its own
        # deadline (analyses still running get 15 s to finish, then are killed).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nstopping scanhub (analyses still running get up to 15 s to finish) ...", file=sys.stderr)
        cluster.stop()
        if follower is not None:
            follower.stop()
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)
        print("stopped.", file=sys.stderr)


def failure_logs(cluster: LocalCluster, error: BaseException, lines: int = 15) -> str:
    """The end of the log of each process the start-up error names (all of them if none), so
    the reason is on screen even when the state directory is about to be removed. A
    `ProcessExited` error carries its process's log already."""
    if isinstance(error, ProcessExited):
        return ""
    named = [part for part in cluster.processes() if part.name in str(error)] or cluster.processes()
    parts = []
    for part in named:
        tail = part.log_tail(lines)
        if tail:
            parts.append(f"--- the end of {part.log_path}:\n{tail}")
    return "\n".join(parts)


class LogFollower:
    """`--verbose`: prints what each process writes to its log file, prefixed with the file's
    name, as `tail -f` would; files that appear later are picked up."""

    def __init__(self, log_dir: Path, interval: float = 0.2, out: TextIO | None = None):
        self.log_dir = log_dir
        self.interval = interval
        self.out = out or sys.stdout
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="log-follower", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(5)
        self.poll()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        for path in sorted(self.log_dir.glob("*.log")):
            try:
                with path.open("rb") as log:
                    log.seek(self.offsets.get(path, 0))
                    data = log.read(1 << 20)
                    self.offsets[path] = log.tell()
            except OSError:
                continue
            *lines, rest = (self.partial.pop(path, b"") + data).split(b"\n")
            if rest:
                self.partial[path] = rest
            for line in lines:
                self.out.write(f"{path.stem} | {line.decode(errors='replace')}\n")
        self.out.flush()


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


def banner(cluster: LocalCluster, temporary: bool) -> str:
    """What `make run` prints once every service answers: its links (each answers 200), how
    to scan a file, and where the logs are."""
    hub = cluster.hub_url
    ca = cluster.ca_file
    curl = f"curl --cacert {ca}" if ca else "curl"
    scan = ".venv/bin/scanhub scan"
    if hub != f"http://127.0.0.1:{HUB_PORT}":
        scan += f" --url {hub}" + (f" --ca-file {ca}" if ca else "")
    kept = "removed when scanhub stops" if temporary else "kept: start again with the same --state-dir"
    width = max([len(node.name) for node in cluster.nodes] + [len("metrics")])
    lines = [
        "",
        f"scanhub is running: a Hub in front of {len(cluster.nodes)} Worker node(s).",
        "",
        f"  {'Hub':<{width}}  {hub}/   (status page, upload box)",
        *(f"  {node.name:<{width}}  {node.url}/" for node in cluster.nodes),
        f"  {'metrics':<{width}}  {hub}/metrics",
        f"  {'API':<{width}}  {hub}/openapi.json",
        "",
        "Scan files, from another terminal in this directory:",
        f"  $ {scan} samples/files/",
        f"  $ {curl} -F file=@/bin/ls {hub}/api/tiscale/v1/upload",
        "    (answers with a task_url on the Worker that took the file: curl it for the report)",
        "",
        f"Logs:  {cluster.log_dir}  (one file per process; --verbose streams them here)",
        f"State: {cluster.state_dir}  ({kept})",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def print_banner(cluster: LocalCluster, temporary: bool) -> None:
    print(banner(cluster, temporary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
