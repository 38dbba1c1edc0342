"""Container probes: readiness wants 200, liveness any answer; `--kill-after` restarts only a hung process."""

from __future__ import annotations

import http.server
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import healthcheck
from deploy.healthcheck import Result, kill_if_stuck, main_processes


@pytest.fixture
def answering_503() -> Iterator[str]:
    class Unhealthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unhealthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/health"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hung(monkeypatch) -> Iterator[str]:
    """A port whose connections the kernel accepts but no one ever answers, as with a hung event loop."""
    monkeypatch.setattr(healthcheck, "TIMEOUT_SECONDS", 0.3)
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    finally:
        listener.close()


def test_readiness_wants_200_and_liveness_accepts_any_answer(answering_503):
    assert healthcheck.main(["http", answering_503]) == 1
    assert healthcheck.main(["alive", answering_503]) == 0
    assert healthcheck.check(["http", answering_503]) is Result.UNHEALTHY


def test_a_hung_server_fails_liveness_though_its_port_accepts_connections(hung):
    assert healthcheck.main(["alive", hung]) == 1
    assert healthcheck.check(["http", hung]) is Result.UNRESPONSIVE


def test_nothing_listening_is_unresponsive_and_a_bad_command_is_a_usage_error():
    assert healthcheck.check(["alive", "http://127.0.0.1:9/health"]) is Result.UNRESPONSIVE
    assert healthcheck.main(["nonsense"]) == 2
    assert healthcheck.main(["--kill-after", "0", "alive", "http://127.0.0.1:9/"]) == 2


def fake_proc(root: Path, init: str, processes: dict[int, int]) -> Path:
    """A /proc with PID 1 named `init` and `processes` as pid -> parent pid."""
    for pid, parent in {1: 0, **processes}.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} (py (x) y) S {parent} {pid} {pid} 0 -1")
    (root / "1" / "comm").write_text(f"{init}\n")
    return root


def test_the_main_processes_are_the_children_of_pid_1(tmp_path):
    proc = fake_proc(tmp_path, "docker-init", {7: 1, 12: 7, 13: 7, 40: 0})
    assert main_processes(proc) == [7]


def test_kill_after_kills_the_main_process_only_after_n_unresponsive_results_in_a_row(tmp_path):
    proc = fake_proc(tmp_path / "proc", "docker-init", {7: 1, 12: 7})
    state, killed = tmp_path / "state", []

    def probe(result: Result) -> None:
        kill_if_stuck(result, 3, proc, state, lambda pid, signum: killed.append((pid, signum)))

    for result in (Result.UNRESPONSIVE, Result.UNRESPONSIVE, Result.HEALTHY, Result.UNRESPONSIVE):
        probe(result)
    probe(Result.UNHEALTHY)  # answers, though badly: a restart would not help
    probe(Result.UNRESPONSIVE)
    probe(Result.UNRESPONSIVE)
    assert killed == []
    probe(Result.UNRESPONSIVE)
    assert killed == [(7, signal.SIGKILL)]


def test_a_restarted_process_starts_its_count_from_zero(tmp_path):
    state, killed = tmp_path / "state", []
    proc = fake_proc(tmp_path / "before", "docker-init", {7: 1})
    kill_if_stuck(Result.UNRESPONSIVE, 2, proc, state, lambda pid, signum: killed.append(pid))
    proc = fake_proc(tmp_path / "after", "docker-init", {8: 1})
    kill_if_stuck(Result.UNRESPONSIVE, 2, proc, state, lambda pid, signum: killed.append(pid))
    assert killed == []
    kill_if_stuck(Result.UNRESPONSIVE, 2, proc, state, lambda pid, signum: killed.append(pid))
    assert killed == [8]


def test_kill_after_kills_nothing_without_an_init_as_pid_1(tmp_path, capsys):
    proc = fake_proc(tmp_path / "proc", "python", {7: 1})
    killed: list[int] = []
    for _ in range(3):
        kill_if_stuck(
            Result.UNRESPONSIVE, 1, proc, tmp_path / "state", lambda pid, signum: killed.append(pid)
        )
    assert killed == []
    assert "needs an init as PID 1" in capsys.readouterr().err
