"""`scanhub task` and `scanhub search`: one report, and the tasks of one sample."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import IO, Any

from cli.client import Client, ServiceError
from cli.display import STYLES, print_table, printable
from cli.verdicts import CLASSIFICATION_NAMES

SEARCH_PATH = "/api/scanhub/v1/samples/{hash}"
TASK_PATH = "/api/tiscale/v1/task/{task_id}"


async def read_task(client: Client, task_url: str, report_type: str | None) -> Any:
    params = {"report_type": report_type} if report_type else None
    return await client.get_json(task_url, params)


async def search(client: Client, url: str, digest: str) -> dict[str, Any]:
    """The search answer of a Hub (every Worker's tasks, `partial` naming the silent ones)
    or of a Worker (its own tasks); the same shape but for `worker` and `partial`."""
    answer = await client.get_json(f"{url}{SEARCH_PATH.format(hash=digest.strip())}")
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("tasks", []), list)
        or not isinstance(answer.get("partial") or [], list)
    ):
        raise ServiceError(f"the search answer is not one scanhub gives: {str(answer)[:200]}")
    return answer


def when(timestamp: Any) -> str:
    if not isinstance(timestamp, int | float) or not timestamp:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def classification_name(code: Any) -> str:
    return CLASSIFICATION_NAMES.get(code, "") if isinstance(code, int) else ""


def print_search(out: IO[str], err: IO[str], answer: Mapping[str, Any]) -> None:
    tasks = [task for task in answer.get("tasks", []) if isinstance(task, dict)]
    sha256 = answer.get("sha256") or answer.get("hash", "")
    for missing in answer.get("partial") or []:
        if isinstance(missing, dict):
            worker, error = missing.get("worker"), missing.get("error")
        else:
            worker, error = missing, "?"
        err.write(printable(f"warning: {worker} did not answer, its tasks are missing: {error}") + "\n")
    if not tasks:
        out.write(printable(f"no task holds sample {sha256}") + "\n")
        return
    out.write(printable(f"sample {sha256}: {len(tasks)} task(s), newest first") + "\n")
    headers = ["task_url", "status", "classification", "threat", "file name", "found as", "submitted"]
    rows, styles = [], []
    for task in tasks:
        name = classification_name(task.get("classification"))
        rows.append(
            [
                task.get("task_url", ""),
                task.get("status", ""),
                name,
                task.get("threat_name") or "",
                task.get("file_name", ""),
                task.get("found_as", ""),
                when(task.get("submitted")),
            ]
        )
        styles.append(STYLES.get(name))
    print_table(out, headers, rows, styles=styles)
