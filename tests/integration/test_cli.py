"""The `scanhub` command against a running cluster: a Hub and a Worker node (Valkey, Celery).

Each command runs as a subprocess (`python -m cli`) with pipes for its output, as in a CI
log: no terminal, so no control codes. One cluster serves all the checks; every service
requires a token, so the authorization options are exercised on every call.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy.processes import Managed, free_port, hub_env, start_hub, wait_hub_ready, wait_until
from tests.conftest import NodeFactory
from tests.e2e.conftest import clean_environment
from tests.support.json_server import JsonHandler

TOKEN = "C" * 40
# EICAR, put together here so that no file of the repository carries it whole.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS" + b"-TEST-FILE!$H+H*"
UPLOAD_LIMIT = 100_000


@dataclass
class Cluster:
    hub_url: str
    worker_url: str

    def worker_tasks(self) -> int:
        """How many tasks the Worker holds: one per upload that reached it."""
        request = urllib.request.Request(
            f"{self.worker_url}/api/tiscale/v1/task", headers={"Authorization": f"Token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return len(json.load(response))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """One Worker node and a Hub in front of it, both requiring TOKEN, uploads up to UPLOAD_LIMIT."""
    root = tmp_path / "cluster"
    nodes = NodeFactory(root)
    hub: Managed | None = None
    try:
        node = nodes(admin_tokens=TOKEN, max_upload_bytes=str(UPLOAD_LIMIT))
        port = free_port()
        settings = {
            "SCANHUB_ADMIN_TOKENS": TOKEN,
            "SCANHUB_WORKER_TOKENS": TOKEN,
            "SCANHUB_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
            "SCANHUB_HEALTH_INTERVAL_SECONDS": "0.5",
        }
        env = hub_env(clean_environment(), port, [node.url], root / "hub-spool", **settings)
        hub = start_hub(env, log_dir=root)
        hub_url = f"http://127.0.0.1:{port}"
        wait_hub_ready(hub, hub_url)
        yield Cluster(hub_url, node.url)
    finally:
        if hub is not None:
            hub.stop()
        nodes.close()


def cli_environment(**extra: str) -> dict[str, str]:
    """The environment of a plain CI job: no scanhub settings, nothing forcing colours."""
    env = clean_environment()
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "CLICOLOR_FORCE", "COLUMNS"):
        env.pop(name, None)
    return {**env, **extra}


def scanhub(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=cli_environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def plain(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The result, once checked to hold no terminal control code and no traceback."""
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream
        assert "Traceback" not in stream
    return result


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_tree(root: Path) -> dict[str, bytes]:
    """A folder of small files, one of them EICAR, with a link and a nested folder."""
    files = {
        "notes.txt": b"nothing to see here\n",
        "eicar.com": EICAR,
        "nested/run.sh": b"#!/bin/sh\necho hello\n",
        "nested/deeper/data.bin": bytes(range(256)) * 4,
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (root / "link-to-notes").symlink_to(root / "notes.txt")  # skipped: links are not followed
    return files


def check_scan_follow_up_commands_and_resume(cluster: Cluster, tmp_path: Path) -> None:
    tree = tmp_path / "samples"
    tree.mkdir()
    files = make_tree(tree)
    output = tmp_path / "out.jsonl"
    before = cluster.worker_tasks()

    # A folder through the Hub, with --output and --fail-on malicious: EICAR makes it exit 1.
    first = plain(
        scanhub(
            "scan", "samples", "--url", cluster.hub_url, "--token", TOKEN,
            "--output", str(output), "--fail-on", "malicious", "--concurrency", "3",
            cwd=tmp_path,
        )
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert cluster.worker_tasks() - before == len(files)
    # Progress: one plain line per finished file, numbered, then a summary line.
    progress = [line for line in first.stderr.splitlines() if line.startswith("[")]
    assert sorted(line.split("]")[0] + "]" for line in progress) == [f"[{n}/4]" for n in range(1, 5)]
    assert any(line.startswith("[") and "samples/eicar.com  malicious" in line for line in progress)
    assert "skipped 1 symbolic link(s)" in first.stderr
    assert "-- 4/4 files" in first.stderr
    # The verdict table: a header, one row per file, the counts.
    table = first.stdout.splitlines()
    assert table[0].split() == ["file", "type", "classification", "threat", "/", "error", "children"]
    rows = {line.split()[0]: line for line in table[1:5]}
    assert set(rows) == {f"samples/{name}" for name in files}
    assert " malicious " in rows["samples/eicar.com"]
    assert "malicious" not in rows["samples/notes.txt"]
    assert table[5].startswith("4 files: 1 malicious")
    # The JSON lines: one per file, with what the Worker and the local file say.
    records = {Path(record["path"]).relative_to(tree).as_posix(): record for record in read_lines(output)}
    assert set(records) == set(files)
    for name, content in files.items():
        record = records[name]
        assert record["state"] == "done"
        assert record["size"] == len(content)
        assert record["sha256"] == hashlib.sha256(content).hexdigest()
        assert record["task_url"].startswith(f"{cluster.worker_url}/api/tiscale/v1/task/")
        hashes = {item["name"]: item["value"] for item in record["report"][0]["info"]["file"]["hashes"]}
        assert hashes["sha256"] == record["sha256"]
    assert records["eicar.com"]["verdict"]["classification"] == "malicious"
    assert records["eicar.com"]["verdict"]["threat_name"]

    # `task`: the report of one of them, compact JSON on one line, in the report type asked for.
    eicar_url = records["eicar.com"]["task_url"]
    task = plain(scanhub("task", eicar_url, "--report-type", "small", "--token", TOKEN))
    assert task.returncode == 0, task.stderr
    assert len(task.stdout.splitlines()) == 1
    view = json.loads(task.stdout)
    assert view["status"] == "done" and view["tc_report"][0]["classification"]["classification"] == 3
    assert "story" not in view["tc_report"][0]  # `small` leaves out all but verdict and hashes
    by_id = plain(scanhub("task", str(view["task_id"]), "--url", cluster.worker_url, "--token", TOKEN))
    assert json.loads(by_id.stdout)["task_id"] == view["task_id"]
    assert "story" in json.loads(by_id.stdout)["tc_report"][0]  # the Worker's default: medium

    # `search`: the Hub finds the EICAR task on its Worker by the hash the scan recorded.
    search = plain(
        scanhub("search", records["eicar.com"]["sha256"], "--url", cluster.hub_url, "--token", TOKEN)
    )
    assert search.returncode == 0, search.stderr
    lines = search.stdout.splitlines()
    assert lines[0] == f"sample {records['eicar.com']['sha256']}: 1 task(s), newest first"
    assert lines[1].split()[:3] == ["task_url", "status", "classification"]
    assert lines[2].split()[:3] == [eicar_url, "done", "malicious"]
    assert "eicar.com" in lines[2]

    # --resume with the first run's output: nothing is uploaded again; the verdicts recorded
    # still count, so --fail-on still fails, and without it the run passes.
    resumed = plain(
        scanhub("scan", "samples", "--url", cluster.hub_url, "--resume", str(output), cwd=tmp_path,
                SCANHUB_TOKEN=TOKEN)
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resume: 4 file(s) already done in {output}, 0 to send" in resumed.stderr
    assert cluster.worker_tasks() - before == len(files)
    assert "4 files (4 from an earlier run): 1 malicious" in resumed.stdout
    # A new file and a changed one are sent; the others are not.
    (tree / "added.txt").write_bytes(b"a file added after the first run\n")
    (tree / "notes.txt").write_bytes(b"notes, edited\n")
    again = plain(
        scanhub("scan", "samples", "--url", cluster.hub_url, "--resume", str(output),
                "--fail-on", "malicious", cwd=tmp_path, SCANHUB_TOKEN=TOKEN)
    )  # fmt: skip
    assert again.returncode == 1, again.stderr
    assert "resume: 3 file(s) already done" in again.stderr and "2 to send" in again.stderr
    assert cluster.worker_tasks() - before == len(files) + 2
    sent = [line.split("  ")[0].split() for line in again.stderr.splitlines() if line.startswith("[")]
    assert sorted(number for number, _ in sent) == ["[1/2]", "[2/2]"]
    assert sorted(path for _, path in sent) == ["samples/added.txt", "samples/notes.txt"]
    assert len(read_lines(output)) == len(files) + 2  # appended to


def check_errors_exit_2_and_the_other_files_go_on(cluster: Cluster, tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"small enough\n")
    large = tmp_path / "large.bin"
    large.write_bytes(b"x" * (UPLOAD_LIMIT + 1))
    output = tmp_path / "out.jsonl"
    # The Worker refuses the large file (413); the small one is analyzed; EICAR is not there,
    # but the error alone makes the exit code 2.
    result = plain(
        scanhub("scan", str(small), str(large), "--url", cluster.hub_url, "--token", TOKEN,
                "--output", str(output), "--fail-on", "suspicious")
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    records = {Path(record["path"]).name: record for record in read_lines(output)}
    assert records["small.txt"]["state"] == "done"
    assert records["large.bin"]["state"] == "error"
    assert records["large.bin"]["error"].startswith("HTTP 413: ")
    assert any("large.bin  error  HTTP 413" in line for line in result.stderr.splitlines())
    # Without the token: refused with the service's own message.
    refused = plain(scanhub("scan", str(small), "--url", cluster.hub_url))
    assert refused.returncode == 2
    assert "HTTP 401: authorization required" in refused.stderr
    # Nothing listening: a connection error, after a few quick retries.
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = plain(scanhub("scan", str(small), "--url", dead, "--token", TOKEN))
    assert unreachable.returncode == 2
    assert "cannot connect to 127.0.0.1" in unreachable.stderr
    status = plain(scanhub("status", "--url", dead))
    assert status.returncode == 2 and status.stderr.startswith("error: cannot connect")


def check_bearer_tokens_from_each_service(cluster: Cluster, tmp_path: Path) -> None:
    """A bearer from the Hub's token endpoint for the upload, one from the Worker's for the task."""
    sample = tmp_path / "bearer.txt"
    sample.write_bytes(b"sent with a bearer token\n")
    options = ["--url", cluster.hub_url, "--bearer-client-id", "ci", "--bearer-secret", TOKEN]
    result = plain(scanhub("scan", str(sample), *options))
    assert result.returncode == 0, result.stderr
    assert "1 files: " in result.stdout
    wrong = plain(scanhub("scan", str(sample), "--url", cluster.hub_url, "--bearer-secret", "W" * 40))
    assert wrong.returncode == 2
    assert "bearer token from" in wrong.stderr and "invalid_client" in wrong.stderr


def check_status_of_the_hub_and_of_a_worker(cluster: Cluster, tmp_path: Path) -> None:
    hub = plain(scanhub("status", "--url", cluster.hub_url, "--token", TOKEN))
    assert hub.returncode == 0, hub.stderr
    lines = hub.stdout.splitlines()
    assert lines[0] == f"Hub {cluster.hub_url}: ok (1 of 1 Workers healthy)"
    assert lines[1] == "Workers"
    assert lines[2].split()[:3] == ["worker", "healthy", "queue"]
    assert lines[3].split()[:2] == [cluster.worker_url, "yes"]
    as_json = plain(scanhub("status", "--url", cluster.hub_url, "--token", TOKEN, "--json"))
    status = json.loads(as_json.stdout)
    # This repository's Hub has the status route: its numbers, as it gave them.
    assert "throughput" in status, status
    done = status["throughput"]["done"]
    assert lines[-2].startswith(f"Throughput: {sum(done)} finished in the last {len(done)} intervals")
    assert lines[-1] == "Verdicts: " + ", ".join(
        f"{status['verdicts'].get(name, 0)} {name}"
        for name in ("malicious", "suspicious", "goodware", "unknown")
    )
    assert status["service"] == "hub" and status["health"]["status"] == "ok"
    assert [worker["url"] for worker in status["workers"]] == [cluster.worker_url]

    worker = plain(scanhub("status", "--url", cluster.worker_url, "--token", TOKEN))
    assert worker.returncode == 0, worker.stderr
    lines = worker.stdout.splitlines()
    assert lines[0] == f"Worker {cluster.worker_url}: ok"
    assert lines[1].startswith("Queue depth: ") and lines[2] == "Celery workers: 1"
    # The Worker has its status route too: its throughput, not "not reported".
    worker_json = json.loads(
        plain(scanhub("status", "--url", cluster.worker_url, "--token", TOKEN, "--json")).stdout
    )
    assert "throughput" in worker_json, worker_json
    done = worker_json["throughput"]["done"]
    assert lines[-2].startswith(f"Throughput: {sum(done)} finished in the last {len(done)} intervals")
    assert lines[-1].startswith("Verdicts: ") and "not reported" not in lines[-1]


def check_hostile_file_names(cluster: Cluster, tmp_path: Path) -> None:
    """Names that are not UTF-8, hold Rich markup or control characters: sent, recorded, and
    shown as escapes, with neither a traceback nor a control code in the output."""
    tree = tmp_path / "names"
    tree.mkdir()
    names = [os.fsdecode(b"\xffbad.bin"), "[bold]y.txt", "invoice[draft].pdf", "esc\x1b[31mred\nforged.txt"]
    for name in names:
        (tree / name).write_bytes(b"a file with an odd name\n")
    output = tmp_path / "out.jsonl"
    result = plain(
        scanhub("scan", str(tree), "--url", cluster.hub_url, "--token", TOKEN, "--output", str(output))
    )
    assert result.returncode == 0, result.stderr
    assert f"{tree}/\\xffbad.bin " in result.stdout
    assert f"{tree}/esc\\x1b[31mred\\nforged.txt " in result.stdout
    assert f"{tree}/[bold]y.txt " in result.stdout and f"{tree}/invoice[draft].pdf " in result.stdout
    assert len(result.stdout.splitlines()) == 1 + len(names) + 1  # header, a row each, the counts
    records = read_lines(output)
    assert sorted(record["path"] for record in records) == sorted(str(tree / name) for name in names)
    assert all(record["state"] == "done" for record in records)


# Control sequences a terminal interprets: colours, cursor moves, erasing, show/hide cursor.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def scanhub_on_a_terminal(*args: str, cwd: Path, columns: int = 150) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal of `columns` as its stdin, stdout and stderr, as a
    user at a terminal would; its exit code and everything the terminal received."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = cli_environment(TERM="xterm-256color", COLUMNS=str(columns), LINES="50")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env,
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every holder of the terminal has closed it
                break
            if not chunk:
                break
            received += chunk
        returncode = process.wait(60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return returncode, received.decode("utf-8", errors="replace")


def check_a_terminal_gets_the_live_progress_and_a_drawn_table(cluster: Cluster, tmp_path: Path) -> None:
    tree = tmp_path / "samples"
    tree.mkdir()
    files = make_tree(tree)
    returncode, received = scanhub_on_a_terminal(
        "scan", "samples", "--url", cluster.hub_url, "--token", TOKEN, "--fail-on", "malicious",
        cwd=tmp_path,
    )  # fmt: skip
    assert returncode == 1, received
    assert "Traceback" not in received
    # The display is drawn: styles and cursor moves, which the plain output never holds.
    assert ANSI.search(received), received
    text = ANSI.sub("", received).replace("\r", "")
    # The bar's last frame, left above the table: every file counted, every byte sent (Rich
    # writes "1.1/1.1 kB"); no plain progress summary.
    last_frame = text[: text.index("┏")].rstrip().rsplit("\n", 1)[-1].rsplit("4/4 files", 1)
    assert len(last_frame) == 2, text
    assert re.search(r"\b(\d+\.\d)/\1 kB\b", last_frame[1]), last_frame
    assert "-- 4/4 files" not in text
    # A flagged file is printed above the bar as it finishes.
    assert re.search(r"\[\d/4\] samples/eicar\.com  malicious", text), text
    # The verdict table is drawn with box characters: a header and a row per file.
    lines = text.splitlines()
    header = next(line for line in lines if "classification" in line and "children" in line)
    assert header.startswith("┃") and "file" in header, header
    rows = {name: line for name in files for line in lines if f"samples/{name}" in line and "│" in line}
    assert set(rows) == set(files), text
    assert "malicious" in rows["eicar.com"] and "malicious" not in rows["notes.txt"]
    assert "4 files: 1 malicious" in text


def test_every_command_against_a_hub_and_a_worker(cluster: Cluster, tmp_path: Path):
    """One test, so that one cluster serves every check: pytest-xdist hands a module's tests
    to its workers in turn, and a module-scoped cluster would be started once per worker."""
    for check in (
        check_scan_follow_up_commands_and_resume,
        check_errors_exit_2_and_the_other_files_go_on,
        check_bearer_tokens_from_each_service,
        check_status_of_the_hub_and_of_a_worker,
        check_hostile_file_names,
        check_a_terminal_gets_the_live_progress_and_a_drawn_table,
    ):
        work = tmp_path / check.__name__
        work.mkdir()
        check(cluster, work)


class StallingWorker(JsonHandler):
    """Takes every upload and never finishes a task: a scan waits on them until interrupted."""

    uploads = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).uploads += 1
            number = type(self).uploads
        self.answer({"task_url": f"http://{self.headers['Host']}/api/tiscale/v1/task/{number}"})

    def do_GET(self) -> None:
        self.answer({"task_id": 1, "status": "queued", "processed": None, "tc_report": None})


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), StallingWorker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for number in range(3):
        (tmp_path / f"file{number}.txt").write_text(f"file {number}\n")
    output = tmp_path / "out.jsonl"
    url = f"http://127.0.0.1:{server.server_port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "scan", str(tmp_path), "--url", url, "--output", str(output)],
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until(lambda: StallingWorker.uploads == 3, 30, what="the three uploads")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        server.shutdown()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "\x1b" not in stderr
    assert "interrupted: 0 of 3 file(s) finished" in stderr
    assert f"results so far are in {output}" in stderr
    assert f"--resume {output}" in stderr
    assert stdout == ""
    assert os.path.exists(output) and output.read_text() == ""
