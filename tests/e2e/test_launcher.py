"""`make run`'s launcher: a working cluster, crashed processes restarted, a clean Ctrl-C."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from deploy.launcher import LocalCluster, Supervisor
from deploy.processes import Managed, free_port, http_status, wait_until
from samples.basic import EICAR, zip_bytes
from tests.e2e.conftest import HUB_TEST_SETTINGS, NODE_SETTINGS, clean_environment
from tests.support.browser import headless_chromium, save_screenshot, wait_for_text
from tests.support.client import submit, wait_for_task


def start_launcher(tmp_path: Path, hub_port: int, worker_port: int, *options: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
    env.pop("REDIS_URL", None)
    env["TMPDIR"] = str(tmp_path)  # where the launcher's temporary state directory goes
    env["SCANHUB_CELERY_CONCURRENCY"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher", "--workers", "1",
         "--hub-port", str(hub_port), "--worker-port", str(worker_port), *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@dataclass
class Launched:
    process: subprocess.Popen
    tmp_path: Path
    hub_port: int
    worker_port: int
    lines: list[str]  # everything printed up to the end of the banner

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"


# One `make run` cluster serves the module's tests: they run on one pytest-xdist worker
# (`--dist loadgroup`), so it is started once.
pytestmark = pytest.mark.xdist_group("launcher")


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Iterator[Launched]:
    """One `make run` cluster (one Worker) for the tests of this module, in their order; the
    last one stops it with Ctrl-C."""
    tmp_path = tmp_path_factory.mktemp("launcher")
    hub_port, worker_port = free_port(), free_port()
    launcher = start_launcher(tmp_path, hub_port, worker_port)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything." not in lines:
            assert time.monotonic() < deadline, "\n".join(lines)
            line = launcher.stdout.readline()  # type: ignore[union-attr]
            assert line or launcher.poll() is None, "\n".join(lines)
            lines.append(line.rstrip())
        yield Launched(launcher, tmp_path, hub_port, worker_port, lines)
    finally:
        # Normally stopped by the last test; else as Ctrl-C would, so that no Redis, Celery
        # or Hub is left running for the tests after these.
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(60)
            except subprocess.TimeoutExpired:
                launcher.kill()


def test_the_banner_comes_last_with_links_that_answer_200_and_logs_go_to_the_state_dir(launched):
    lines = launched.lines
    banner_at = lines.index("scanhub is running: a Hub in front of 1 Worker node(s).")
    # Before the banner only the launcher's own start-up line: the processes write to files.
    assert [line for line in lines[:banner_at] if line.strip()] == [
        line for line in lines[:banner_at] if line.startswith("starting scanhub:")
    ]
    links = [
        match.group(0)
        for line in lines[banner_at:]
        if not line.lstrip().startswith("$")
        for match in re.finditer(r"https?://[^\s)]+", line)
    ]
    assert f"{launched.hub_url}/" in links and f"http://127.0.0.1:{launched.worker_port}/" in links
    for link in links:
        assert http_status(link) == 200, link
    logs_line = next(line for line in lines if line.startswith("Logs:"))
    log_dir = Path(logs_line.split()[1])
    names = {path.name for path in log_dir.iterdir()}
    assert {"hub.log", "worker1-api.log", "worker1-celery.log", "worker1-outputs.log"} <= names
    assert any(name.startswith("redis-") for name in names)
    assert "serving on" in (log_dir / "hub.log").read_text()


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def api_pids(pid: int) -> set[int]:
    return {child.pid for child in descendants(pid) if is_worker_api(child)}


def is_worker_api(process) -> bool:
    return process.cmdline()[-2:] == ["-m", "worker"]


def test_the_status_page_in_a_browser_shows_the_workers_and_an_uploads_verdict(launched, tmp_path):
    """The Hub's page, rendered by a real browser: its Worker, and a file sent through its
    upload box followed to the verdict on the Worker (another origin, allowed by the launcher)."""
    from selenium.webdriver.common.by import By

    driver = headless_chromium()
    try:
        driver.get(f"{launched.hub_url}/")
        wait_for_text(driver, "#summary", lambda text: text == "1 of 1 Workers healthy")
        row = wait_for_text(driver, "#nodes tbody tr", bool)
        assert row.split()[:2] == [f"http://127.0.0.1:{launched.worker_port}", "healthy"], row
        assert driver.execute_script("return document.querySelectorAll('#nodes tbody tr').length") == 1
        sample = tmp_path / "bundle.zip"
        sample.write_bytes(zip_bytes({"eicar.com": EICAR, "notes.txt": b"just notes"}))
        driver.find_element(By.ID, "file").send_keys(str(sample))
        driver.find_element(By.CSS_SELECTOR, "#upload-form button").click()
        assert wait_for_text(driver, "#upload-verdict", bool) == "malicious"
        result = wait_for_text(driver, "#upload-result", bool)
        assert "Text.Test.EICAR" in result and "Archive/ZIP" in result and "2 unpacked" in result
        # The next refresh counts it among the verdicts and in the current minute.
        wait_for_text(driver, ".v-malicious b", lambda text: text not in ("", "0"))
        throughput = wait_for_text(driver, "#throughput-text", bool)
        assert "tasks done in the last 15 minutes" in throughput
        save_screenshot(driver, "status-page-hub.png")

        driver.get(f"http://127.0.0.1:{launched.worker_port}/")
        wait_for_text(driver, "#nodes", lambda text: "redis ok" in text)
        assert wait_for_text(driver, "#title", bool) == "scanhub Worker"
        save_screenshot(driver, "status-page-worker.png")
    finally:
        driver.quit()


async def test_launcher_serves_files_restarts_a_crashed_process_and_ctrl_c_stops_all_and_removes_its_state(
    launched,
):
    launcher, tmp_path = launched.process, launched.tmp_path
    hub_port, worker_port = launched.hub_port, launched.worker_port
    try:
        children = descendants(launcher.pid)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("valkey-server", "-m worker", "celery", "-m hub"):
            assert part in names
        state_dirs = [path for path in tmp_path.iterdir() if path.name.startswith("scanhub-")]
        assert len(state_dirs) == 1

        async with aiohttp.ClientSession() as session:
            task_url = await submit(session, f"http://127.0.0.1:{hub_port}", b"through make run")
            assert task_url.startswith(f"http://127.0.0.1:{worker_port}/")
            assert (await wait_for_task(session, task_url))["status"] == "done"

        # A crashed Worker API is restarted; the rest of the cluster is left running.
        [api] = [child for child in children if is_worker_api(child)]
        os.killpg(api.pid, signal.SIGKILL)
        health = f"http://127.0.0.1:{worker_port}/health"
        wait_until(lambda: api_pids(launcher.pid) - {api.pid} and http_status(health) == 200,
                   30, what="the Worker API to be restarted")  # fmt: skip
        assert all(child.is_running() for child in children if child.pid != api.pid)
        children = descendants(launcher.pid)

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) == 0
        output = launcher.stdout.read()
        assert f"worker1-api (pid {api.pid}) was killed by SIGKILL" in output
        assert "worker1-api restarted (pid " in output
        wait_until(lambda: not any(child.is_running() and child.status() != "zombie" for child in children),
                   15, what="every child to exit")  # fmt: skip
        assert not state_dirs[0].exists()
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_ctrl_c_during_start_up_also_cleans_up(tmp_path):
    launcher = start_launcher(tmp_path, free_port(), free_port())
    try:
        wait_until(lambda: any("celery" in " ".join(c.cmdline()) for c in descendants(launcher.pid)), 60,
                   what="start-up to be under way")  # fmt: skip
        children = descendants(launcher.pid)
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) == 130
        wait_until(lambda: not any(child.is_running() and child.status() != "zombie" for child in children),
                   15, what="every child to exit")  # fmt: skip
        assert not [path for path in tmp_path.iterdir() if path.name.startswith("scanhub-")]
    finally:
        if launcher.poll() is None:
            launcher.kill()


def crash(part: Managed) -> int:
    """SIGKILL a process's whole group, as a crash would, leaving the restart to the supervisor."""
    pid = part.pid
    os.killpg(pid, signal.SIGKILL)
    return pid


def wait_restarted(part: Managed, old_pid: int, health_url: str) -> None:
    wait_until(
        lambda: part.pid != old_pid and part.running() and http_status(health_url) == 200,
        30,
        interval=0.1,
        what=f"{part.name} to be restarted and {health_url} to answer 200",
    )


async def task_status(session: aiohttp.ClientSession, task_url: str) -> str:
    async with session.get(task_url) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["status"])


def supervised_cluster(tmp_path: Path) -> LocalCluster:
    settings = {f"SCANHUB_{name.upper()}": value for name, value in NODE_SETTINGS.items()}
    environment = {
        **clean_environment(),
        **settings,
        **HUB_TEST_SETTINGS,
        "SCANHUB_CELERY_CONCURRENCY": "1",
        "SCANHUB_CELERY_HEARTBEAT_SECONDS": "0.5",  # a killed Celery worker's heartbeat lapses in 1.5 s
    }
    return LocalCluster(
        tmp_path / "state", workers=1, hub_port=free_port(), worker_port=free_port(),
        environment=environment, log_dir=tmp_path,
    )  # fmt: skip


async def test_supervisor_restarts_each_killed_process_and_redis_comes_back_with_its_queue(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scanhub.launcher")
    cluster = supervised_cluster(tmp_path)
    stop = threading.Event()
    supervisor = threading.Thread(target=lambda: None)
    try:
        cluster.start()
        node, [redis], hub = cluster.nodes[0], cluster.redis_servers, cluster.hub
        assert node.api is not None and node.celery is not None and hub is not None
        supervisor = threading.Thread(
            target=Supervisor(cluster.processes()).run, args=(stop.is_set, stop.wait)
        )
        supervisor.start()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for part in (node.api, node.celery):
                wait_restarted(part, crash(part), f"{node.url}/health")
                wait_until(
                    lambda: http_status(f"{cluster.hub_url}/health") == 200, 20, what="the Hub's rotation"
                )
                task_url = await submit(session, cluster.hub_url, f"after {part.name}".encode())
                assert (await wait_for_task(session, task_url))["status"] == "done"

            # With one analysis process busy, the next task waits in Redis; Redis is killed
            # under it and must come back from its append-only file with that task queued.
            busy = await submit(session, node.url, b"SLEEP:2 keeps the only analysis process busy")
            await wait_for_task(session, busy, until=lambda view: view["status"] == "analyzing")
            waiting = await submit(session, node.url, b"queued behind it")
            assert await task_status(session, waiting) == "queued"
            wait_restarted(redis, crash(redis), f"{node.url}/health")
            assert (await wait_for_task(session, waiting))["status"] == "done"
            assert (cluster.state_dir / "worker1" / "redis" / "appendonlydir").is_dir()

            wait_restarted(hub, crash(hub), f"{cluster.hub_url}/health")
            task_url = await submit(session, cluster.hub_url, b"after the hub")
            assert (await wait_for_task(session, task_url))["status"] == "done"
    finally:
        stop.set()
        if supervisor.is_alive():
            supervisor.join(10)
        cluster.stop()
    for name in (f"{node.name}-api", f"{node.name}-celery", redis.name, "hub"):
        assert any(
            message.startswith(f"{name} (pid ")
            and "was killed by SIGKILL" in message
            and "restarting in 0.5 s" in message
            for message in caplog.messages
        ), (name, caplog.messages)
        assert any(message.startswith(f"{name} restarted (pid ") for message in caplog.messages), name


@pytest.mark.parametrize("busy", ["hub", "worker"])
def test_a_port_in_use_is_reported_at_once_with_its_number_and_free_ones(tmp_path, busy):
    hub_port, worker_port = free_port(), free_port()
    taken = hub_port if busy == "hub" else worker_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        started = time.monotonic()
        launcher = start_launcher(tmp_path, hub_port, worker_port)
        output, _ = launcher.communicate(timeout=30)
        took = time.monotonic() - started
    assert launcher.returncode == 1, output
    # At once: before anything starts (a start-up would wait up to 90 s for the nodes). The
    # bound leaves room for a machine loaded by the other tests running beside this one.
    assert took < 10, took
    what = "the Hub" if busy == "hub" else "Worker 1"
    assert f"port {taken} ({what}) is already in use on 127.0.0.1" in output
    suggested = re.search(r"SCANHUB_HUB_PORT=(\d+) SCANHUB_WORKER_PORT=(\d+) make run", output)
    assert suggested is not None, output
    assert taken not in {int(port) for port in suggested.groups()}
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("scanhub-")]  # nothing started
