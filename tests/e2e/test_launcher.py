"""`make run`'s launcher: a working cluster on start, nothing left behind on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from deploy.processes import free_port, wait_until
from tests.support.client import submit, wait_for_task


def start_launcher(tmp_path: Path, hub_port: int, worker_port: int) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
    env.pop("REDIS_URL", None)
    env["TMPDIR"] = str(tmp_path)  # where the launcher's temporary state directory goes
    env["SCANHUB_CELERY_CONCURRENCY"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher", "--workers", "1",
         "--hub-port", str(hub_port), "--worker-port", str(worker_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


async def test_launcher_serves_files_and_ctrl_c_stops_every_process_and_removes_its_state(tmp_path):
    hub_port, worker_port = free_port(), free_port()
    launcher = start_launcher(tmp_path, hub_port, worker_port)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything." not in lines:
            assert time.monotonic() < deadline, "".join(lines)
            line = launcher.stdout.readline()  # type: ignore[union-attr]
            assert line or launcher.poll() is None, "".join(lines)
            lines.append(line.strip())
        assert any(f"http://127.0.0.1:{hub_port}" in line for line in lines)
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

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) == 0
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
