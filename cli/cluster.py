"""`scanhub status`: the state of a Hub and its Workers, or of one Worker.

The service's status route (`/api/hub/v1/status` on a Hub, `/api/worker/v1/status` on a
Worker) gives everything at once. A service that has no status route yet (it answers 404)
is described from what every version serves: `/health`, and on a Hub the Worker list of
`/api/hub/v1/workers`; throughput and verdicts are then not known. `/health` also tells a
Hub (its checks count Workers) from a Worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from cli.client import Client, ServiceError
from cli.display import is_interactive, print_table, printable

HEALTH = "/health"
HUB_STATUS = "/api/hub/v1/status"
HUB_WORKERS = "/api/hub/v1/workers"
WORKER_STATUS = "/api/worker/v1/status"
VERDICT_ORDER = ("malicious", "suspicious", "goodware", "unknown")


async def read_status(client: Client, url: str) -> dict[str, Any]:
    """The service's status JSON, with its `/health` answer under `health`."""
    _, health = await client.request("GET", f"{url}{HEALTH}", accept=frozenset({200, 503}))
    checks = health.get("checks", {}) if isinstance(health, dict) else {}
    if not isinstance(checks, dict):
        raise ServiceError(f"{url}{HEALTH} answered checks that are not an object: {str(health)[:200]}")
    is_hub = "workers_total" in checks
    status, body = await client.request(
        "GET", f"{url}{HUB_STATUS if is_hub else WORKER_STATUS}", accept=frozenset({200, 404})
    )
    if status == 200:
        if not isinstance(body, dict) or not isinstance(body.get("workers", []), list):
            raise ServiceError(f"{url} answered a status that is not one scanhub gives: {str(body)[:200]}")
        return {**body, "health": health}
    if is_hub:
        workers = await client.get_json(f"{url}{HUB_WORKERS}")
        listed = workers.get("workers", []) if isinstance(workers, dict) else None
        if not isinstance(listed, list):
            raise ServiceError(f"{url} answered a Worker list that is not one: {str(workers)[:200]}")
        return {"service": "hub", "health": health, "workers": listed}
    celery = checks.get("celery_workers")
    return {
        "service": "worker",
        "health": health,
        "queue_depth": checks.get("queue_depth"),
        "celery_workers": len(celery) if isinstance(celery, list) else celery,
    }


def as_dict(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: a service's answer, read defensively."""
    return value if isinstance(value, dict) else {}


def health_line(url: str, status: Mapping[str, Any]) -> str:
    health = as_dict(status.get("health"))
    checks = as_dict(health.get("checks"))
    state = health.get("status", "unknown")
    if status.get("service") == "hub":
        workers = (
            f"{checks.get('workers_healthy', '?')} of {checks.get('workers_total', '?')} Workers healthy"
        )
        return f"Hub {url}: {state} ({workers})"
    return f"Worker {url}: {state}"


def throughput_line(throughput: Any) -> str:
    """Tasks finished per interval, oldest first: the status routes call the list `done`."""
    counts = throughput.get("done", throughput.get("finished")) if isinstance(throughput, dict) else None
    if not isinstance(counts, list):
        return "Throughput: not reported by this service (it has no status route)"
    finished = [count for count in counts if isinstance(count, int)]
    interval = throughput.get("interval_seconds", 60)
    counts = " ".join(str(count) for count in finished)
    return (
        f"Throughput: {sum(finished)} finished in the last {len(finished)} intervals of {interval} s "
        f"(oldest first: {counts})"
    )


def verdicts_line(verdicts: Any) -> str:
    if not isinstance(verdicts, dict):
        return "Verdicts: not reported by this service (it has no status route)"
    names = [*VERDICT_ORDER, *(name for name in verdicts if name not in VERDICT_ORDER)]
    return "Verdicts: " + ", ".join(f"{verdicts.get(name, 0)} {name}" for name in names)


def worker_rows(workers: list[Any]) -> list[list[Any]]:
    rows = []
    for worker in workers:
        if not isinstance(worker, dict):
            continue
        own = worker.get("status")
        celery = own.get("celery_workers") if isinstance(own, dict) else None
        rows.append(
            [
                worker.get("url", ""),
                "yes" if worker.get("healthy") else "no",
                "" if worker.get("queue_depth") is None else worker["queue_depth"],
                worker.get("tasks_forwarded", ""),
                "" if celery is None else celery,
                worker.get("last_error") or "",
            ]
        )
    return rows


def print_status(out: IO[str], url: str, status: Mapping[str, Any]) -> None:
    stream = PrintableLines(out)
    stream.write(health_line(url, status) + "\n")
    if status.get("service") == "hub":
        headers = ["worker", "healthy", "queue depth", "forwarded", "celery workers", "last error"]
        workers = status.get("workers")
        rows = worker_rows(workers if isinstance(workers, list) else [])
        styles = [None if row[1] == "yes" else "red" for row in rows]
        print_table(out, headers, rows, title="Workers", styles=styles)
    else:
        stream.write(f"Queue depth: {status.get('queue_depth', '?')}\n")
        stream.write(f"Celery workers: {status.get('celery_workers', '?')}\n")
        tasks = status.get("tasks")
        if isinstance(tasks, dict):
            stream.write("Tasks: " + ", ".join(f"{value} {name}" for name, value in tasks.items()) + "\n")
    stream.write(throughput_line(status.get("throughput")) + "\n")
    stream.write(verdicts_line(status.get("verdicts")) + "\n")


class PrintableLines:
    """Lines written with every character that is not printable escaped (display.printable)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, line: str) -> None:
        self.stream.write(printable(line.removesuffix("\n")) + "\n")


def print_json(stream: IO[str], value: Any) -> None:
    """Pretty and coloured on a terminal, one compact line otherwise (for jq and logs)."""
    if is_interactive(stream):
        from rich.console import Console

        Console(file=stream).print_json(data=value, ensure_ascii=True)
    else:
        # ASCII only: no control or bidi character a service put in a string reaches the
        # terminal (JSON escapes it), and a string with a lone surrogate cannot fail the write.
        stream.write(json.dumps(value, ensure_ascii=True, separators=(",", ":")) + "\n")
