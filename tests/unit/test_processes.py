"""Starting, waiting for and stopping a cluster's processes (deploy.processes)."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy import processes
from deploy.processes import Managed, ProcessExited, WorkerNode, free_port, stop_all, wait_until

# Writes "ready" once its SIGTERM handler is set; on SIGTERM records the time it was asked to
# stop and takes `linger` seconds before exiting (a Celery warm shutdown finishing its job).
# With `linger` < 0 it ignores SIGTERM altogether.
CHILD = """
import signal, sys, time
marks, linger = sys.argv[1], float(sys.argv[2])
def on_term(signum, frame):
    if linger < 0:
        return
    with open(marks, "a") as out:
        out.write(f"term {time.time()}\\n")
    time.sleep(linger)
    with open(marks, "a") as out:
        out.write(f"exit {time.time()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(marks + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


def child(tmp_path: Path, name: str, linger: float) -> Managed:
    marks = tmp_path / name
    part = Managed(name, [sys.executable, "-c", CHILD, str(marks), str(linger)], {}).start()
    wait_until(lambda: Path(f"{marks}.ready").exists(), 10, what=f"{name} to set its handler")
    return part


def marks(tmp_path: Path, name: str) -> dict[str, float]:
    lines = (tmp_path / name).read_text().splitlines()
    return {kind: float(at) for kind, at in (line.split() for line in lines)}


def test_every_process_is_asked_to_stop_before_any_is_waited_for(tmp_path):
    slow, quick = child(tmp_path, "slow", 1.0), child(tmp_path, "quick", 0.0)
    stop_all([slow, quick], timeout=10)
    assert slow.returncode == 0 and quick.returncode == 0
    # The second process got its SIGTERM while the first was still finishing its shutdown.
    assert marks(tmp_path, "quick")["term"] < marks(tmp_path, "slow")["exit"]


def test_a_process_ignoring_sigterm_is_killed_at_the_shared_deadline(tmp_path):
    stubborn, polite = child(tmp_path, "stubborn", -1), child(tmp_path, "polite", 0.0)
    stop_all([stubborn, polite], timeout=1)
    assert stubborn.returncode == -signal.SIGKILL
    assert polite.returncode == 0


def test_the_deadline_is_shared_not_one_per_process(tmp_path):
    stubborn = [child(tmp_path, f"stubborn{number}", -1) for number in range(3)]
    started = time.monotonic()
    stop_all(stubborn, timeout=1)
    # One deadline for the three: about 1 s; one each would be 3 s at least.
    assert time.monotonic() - started < 2.5
    assert [part.returncode for part in stubborn] == [-signal.SIGKILL] * 3


def test_parts_never_started_or_already_ended_are_passed_over(tmp_path):
    never = Managed("never", [sys.executable, "-c", "pass"], {})
    ended = Managed("ended", [sys.executable, "-c", "pass"], {}).start()
    assert ended.process is not None
    ended.process.wait(10)
    stop_all([never, ended], timeout=1)
    assert never.process is None and ended.returncode == 0


# A leader with a pool process (as Celery's main process has): on SIGTERM it waits for its
# child to finish its job, as a warm shutdown does.
LEADER = """
import signal, subprocess, sys, time
marks = sys.argv[1]
pool = subprocess.Popen([sys.executable, "-c", sys.argv[2], marks])
def on_term(signum, frame):
    pool.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.05)
"""
POOL = """
import signal, sys, time
marks = sys.argv[1]
signal.signal(signal.SIGTERM, lambda signum, frame: open(marks, "a").write("sigterm\\n"))
open(marks + ".ready", "w").close()
time.sleep(1)
open(marks, "a").write("job done\\n")
"""


def test_only_the_leader_is_asked_to_stop_so_its_pool_finishes_its_job(tmp_path):
    marks = tmp_path / "pool"
    leader = Managed("leader", [sys.executable, "-c", LEADER, str(marks), POOL], {}).start()
    wait_until(lambda: Path(f"{marks}.ready").exists(), 10, what="the pool process")
    stop_all([leader], timeout=10)
    assert leader.returncode == 0
    assert marks.read_text().splitlines() == ["job done"]


def test_a_node_whose_api_exits_ends_the_wait_at_once_with_the_end_of_its_log(tmp_path):
    """A Worker API that cannot start (here: it prints and exits 3) is reported when it ends,
    with what it printed, rather than after the whole timeout as "connection refused"."""
    node = WorkerNode("node1", f"http://127.0.0.1:{free_port()}", {}, log_dir=tmp_path)
    script = "import sys; print('line one'); print('OSError: address already in use'); sys.exit(3)"
    node.api = Managed("node1-api", [sys.executable, "-c", script], {}, tmp_path / "api.log").start()
    started = time.monotonic()
    try:
        with pytest.raises(ProcessExited) as raised:
            node.wait_answering(30)
    finally:
        node.api.close_log()
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert message.startswith("node1-api exited with 3")
    assert message.endswith("line one\nOSError: address already in use")


def bind_as_a_service(host: str, port: int) -> None:
    """Bind `port` as the services do (SO_REUSEADDR: a port whose connections linger in
    TIME_WAIT is free), which raises if something else holds it."""
    with socket.socket(processes.address_family(host)) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))


ROOM_BELOW_THE_RANGE = processes.ephemeral_port_range()[0] - processes.LOWEST_PORT >= 1000


@pytest.mark.skipif(not ROOM_BELOW_THE_RANGE, reason="this machine's ephemeral range starts too low")
def test_a_free_port_is_below_the_ephemeral_range_and_nothing_listens_on_it():
    """Outgoing connections take their ports from the ephemeral range; a port picked below it
    cannot be taken by one of them before the server meant for it binds."""
    first_ephemeral = processes.ephemeral_port_range()[0]
    for _ in range(20):
        port = free_port()
        assert processes.LOWEST_PORT <= port < first_ephemeral - processes.ROOM_ABOVE
        bind_as_a_service("127.0.0.1", port)


def test_a_port_is_never_handed_out_twice(monkeypatch):
    first = free_port()
    candidates = iter([first, first + 1])  # `first` is free again, but was handed out
    monkeypatch.setattr(processes._ports, "randrange", lambda low, high: next(candidates))
    monkeypatch.setattr(processes, "port_free", lambda host, port: True)
    monkeypatch.setattr(processes, "ephemeral_port_range", lambda: (32768, 60999))
    assert free_port() == first + 1


def test_a_port_in_use_is_never_picked(monkeypatch):
    busy = free_port(count=2)
    monkeypatch.setattr(processes, "_handed_out", collections.deque(maxlen=4096))
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", busy))
        taken.listen()
        candidates = iter([busy, busy + 1])
        monkeypatch.setattr(processes._ports, "randrange", lambda low, high: next(candidates))
        monkeypatch.setattr(processes, "ephemeral_port_range", lambda: (32768, 60999))
        assert free_port() == busy + 1


def test_without_room_below_the_ephemeral_range_the_kernel_picks(monkeypatch):
    def not_called(low, high):
        raise AssertionError("a port below the range was picked")

    monkeypatch.setattr(processes._ports, "randrange", not_called)
    monkeypatch.setattr(processes, "ephemeral_port_range", lambda: (processes.LOWEST_PORT + 10, 60999))
    port = free_port()
    bind_as_a_service("127.0.0.1", port)


def test_free_ports_in_a_row_are_all_free():
    first = free_port(count=3)
    for port in range(first, first + 3):
        bind_as_a_service("127.0.0.1", port)


def test_a_row_with_a_busy_port_is_never_picked(monkeypatch):
    first = free_port(count=4)
    monkeypatch.setattr(processes, "_handed_out", collections.deque(maxlen=4096))
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", first + 1))
        taken.listen()
        candidates = iter([first, first + 2])  # the row from `first` holds the busy port
        monkeypatch.setattr(processes._ports, "randrange", lambda low, high: next(candidates))
        monkeypatch.setattr(processes, "ephemeral_port_range", lambda: (32768, 60999))
        assert free_port(count=2) == first + 2


def test_a_free_port_on_an_ipv6_host(monkeypatch):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = free_port("::1")
    bind_as_a_service("::1", port)


@pytest.fixture
def interrupts():
    """SIGINT handled by a handler that records it (in `.received`) and raises
    KeyboardInterrupt."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    handler.received = received  # type: ignore[attr-defined]
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_inside_a_deferred_block_is_handled_as_it_ends(interrupts):
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), processes.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # a handler would have run by now
        assert interrupts.received == []
        reached_the_end = True
    assert reached_the_end and interrupts.received == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is interrupts  # the handler from before is back


def test_ctrl_c_while_a_process_starts_stops_it_as_the_caller_never_gets_it(
    interrupts, monkeypatch, tmp_path
):
    """Ctrl-C landing just after the fork, through a real call site (`start_worker_api`, which
    returns the started process, as `start_hub` and `start_redis` do): the process it
    interrupted is not left running."""
    real_popen = subprocess.Popen
    started: list[subprocess.Popen] = []

    def popen_then_ctrl_c(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        return started[-1]

    monkeypatch.setattr(processes.subprocess, "Popen", popen_then_ctrl_c)
    monkeypatch.setattr(
        processes, "python_command", lambda *args: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    node = WorkerNode("node1", "http://127.0.0.1:1", {}, log_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        node.start_api()
    assert interrupts.received == [signal.SIGINT]
    assert node.api is None and len(started) == 1
    assert started[0].poll() == -signal.SIGKILL


def test_every_signal_deferred_is_raised_once_and_an_ignored_one_is_left_alone(interrupts):
    terminations: list[int] = []
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: terminations.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt), processes.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert terminations == [] and interrupts.received == []
        time.sleep(0.1)
        assert interrupts.received == [signal.SIGINT]
        # SIGTERM came first and is raised first, once for both; SIGINT's handler raises.
        assert terminations == [signal.SIGTERM]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with processes.deferred_interrupts():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def test_a_start_that_fails_leaves_the_previous_process_group_alone(tmp_path, monkeypatch):
    """Restarting onto a command that cannot run (a rebuilt venv): the ended process's group
    id may belong to another process by now, so nothing is signalled."""
    part = Managed("quick", [sys.executable, "-c", "pass"], {}).start()
    part.stop()  # it has ended; its group was killed once
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(processes.os, "killpg", lambda pid, signum: signalled.append((pid, signum)))
    part.command = [str(tmp_path / "no-such-binary")]
    ended = part.process
    with pytest.raises(FileNotFoundError):
        part.start()
    assert signalled == []
    assert part.process is ended
