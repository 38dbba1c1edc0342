"""A Worker API or Hub whose port is taken exits at once, saying so, rather than running on
without listening (a supervisor or `docker compose` then sees it fail and can act)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploy.processes import Managed, hub_env, python_command, wait_until, worker_env
from tests.e2e.conftest import clean_environment


@pytest.fixture
def port_of_a_connection(redis_server: str) -> Iterator[int]:
    """The local port of an established connection (to Redis): what an outgoing connection
    holds when it took a port a test had just found free. Nothing listens on it."""
    address = urlsplit(redis_server)
    with socket.socket() as client:
        client.bind(("127.0.0.1", 0))
        client.connect((address.hostname, address.port))
        yield client.getsockname()[1]


def run_until_exit(module: str, env: dict[str, str], tmp_path: Path) -> tuple[int | None, str]:
    """Run `python -m module` until it exits (30 s at most); its exit status and its log."""
    log_path = tmp_path / f"{module}.log"
    service = Managed(module, python_command("-m", module), env, log_path).start()
    try:
        wait_until(lambda: not service.running(), 30, what=f"{module} to exit")
    finally:
        service.stop(timeout=3)
    return service.returncode, log_path.read_text()


@pytest.mark.parametrize("module", ["worker", "hub"])
def test_a_service_whose_port_is_taken_exits_with_1_naming_the_port(
    module, redis_server, port_of_a_connection, tmp_path
):
    port = port_of_a_connection
    spool = tmp_path / "spool"
    spool.mkdir()
    if module == "worker":
        env = worker_env(clean_environment(), redis_server, port, spool, PYTHONUNBUFFERED="1")
        # A sweeper busy with Redis, as when the process hung: it must not even start.
        env["SCANHUB_SWEEP_INTERVAL_SECONDS"] = "0.3"
    else:
        env = hub_env(clean_environment(), port, ["http://127.0.0.1:9"], spool)
    returncode, log = run_until_exit(module, env, tmp_path)
    assert returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
