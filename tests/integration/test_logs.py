"""A Worker node's logs as operators read them: JSON lines, one INFO line per analyzed file,
the task id on every line about a task."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson

from samples.basic import EICAR, zip_bytes
from tests.support.client import submit, wait_for_task


def log_entries(node) -> dict[str, list[dict]]:
    """Every line of each of the node's log files, parsed: a line that is not JSON fails here."""
    entries = {}
    for path in Path(node.log_dir).glob("*.log"):
        if path.name.startswith("redis"):
            continue
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        entries[path.name] = [parsed(path.name, line) for line in lines]
    return entries


def parsed(name: str, line: str) -> dict:
    try:
        return dict(orjson.loads(line))
    except orjson.JSONDecodeError:
        raise AssertionError(f"a line of {name} is not JSON: {line!r}") from None


async def test_json_logs_have_one_info_line_per_file_and_the_task_id_on_every_task_line(worker_nodes):
    node = worker_nodes(log_format="json", log_level="INFO")
    files = {"notes.txt": b"nothing to see\n", "bundle.zip": zip_bytes({"eicar.com": EICAR})}
    async with aiohttp.ClientSession() as session:
        urls = {
            name: await submit(session, node.url, content, filename=name) for name, content in files.items()
        }
        views = {name: await wait_for_task(session, url) for name, url in urls.items()}
        # A task deleted through the API is logged with its id too.
        deleted = views["notes.txt"]["task_id"]
        async with session.delete(urls["notes.txt"]) as response:
            assert response.status == 200
    node.stop()  # what the processes log as they stop is in JSON lines too
    entries = log_entries(node)
    assert set(entries) >= {f"{node.name}-api.log", f"{node.name}-celery.log"}
    every = [entry for lines in entries.values() for entry in lines]
    assert every, "the node logged nothing"
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in every)
    for name, view in views.items():
        task_id = view["task_id"]
        about = [entry for entry in every if entry.get("task_id") == task_id]
        done = [entry for entry in about if entry["message"].startswith(f"task {task_id} done")]
        assert len(done) == 1, about
        assert name in done[0]["message"] and done[0]["level"] == "INFO"
        # Every line that names the task carries its id.
        naming = [entry for entry in every if f"task {task_id} " in entry["message"] + " "]
        assert all(entry.get("task_id") == task_id for entry in naming), naming
        analysis_lines = [entry for entry in about if entry["logger"].startswith("worker.tasks")]
        assert len(analysis_lines) == 1, analysis_lines  # one line per file from the analysis
    zipped = next(
        entry for entry in every if entry["message"].startswith(f"task {views['bundle.zip']['task_id']} done")
    )
    assert "malicious" in zipped["message"] and "1 unpacked" in zipped["message"]
    deletions = [
        entry for entry in every if "deleted" in entry["message"] and entry.get("task_id") == deleted
    ]
    assert len(deletions) == 1
    # Stopping is logged as a line of the same format.
    assert any(
        entry["message"].startswith("shutting down (warm") for entry in entries[f"{node.name}-celery.log"]
    )
    # Celery's per-job lines ("Task ... received", "... succeeded in") stay below INFO.
    assert not [entry for entry in every if entry["logger"] in ("celery.app.trace", "celery.worker.strategy")]
