"""Outputs: a finished task's report sent on to a callback receiver and to Splunk.

When a task ends (done or failed), `queue_outputs` records each output that applies in the
task (`output:<name>` fields, shown as `outputs` by GET /task) and sends one
`scanhub.deliver` job per output to the node's outputs queue. The outputs worker (a
separate Celery worker with a thread pool, `python -m worker.celery_worker outputs`) runs
them, so a receiver that is slow or down never holds up analysis.

Each job makes one attempt (`attempt_delivery`): it POSTs the report through the outbound
policy (`worker/outbound.py`) and records the outcome in the task. A 2xx answer is
delivered; a connection error, a timeout, 408, 429 or 5xx is tried again after a backoff
that doubles from `output_backoff_seconds` (at most `output_backoff_max_seconds`) until
`output_attempts` attempts in all; any other answer fails at once, and an address the
policy refuses is recorded as `refused`. An output already delivered is never sent again,
even when its job is delivered twice (the state in the task is checked under a lock).

S3 is not here: the report and the sample are written by the analysis job itself, before
the task is done (`worker/s3.py`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from common import tls
from worker import outbound, reports
from worker.settings import WorkerSettings
from worker.store import DONE, FAILED, OUTPUT_FIELD_PREFIX, SyncTaskStore

log = logging.getLogger(__name__)

CALLBACK, SPLUNK = "callback", "splunk"
PENDING, DELIVERED, GAVE_UP, REFUSED, DISABLED = "pending", "delivered", "failed", "refused", "disabled"
RETRIED_STATUSES = {408, 429}
SPLUNK_PATH = "/services/collector/event"
MAX_ERROR_TEXT = 300

# Sends one delivery job: (task id, output name, seconds to wait before running it).
SendDelivery = Callable[[int, str, float], None]


def callback_options(user_data: Any, report_types: Mapping[str, Any]) -> dict[str, Any] | None:
    """`user_data.callback` checked at submission; ValueError says what is wrong with it."""
    requested = user_data.get("callback") if isinstance(user_data, dict) else None
    if requested is None:
        return None
    if not isinstance(requested, dict):
        raise ValueError("'user_data.callback' must be an object")
    for name in ("url", "report_type", "view"):
        if requested.get(name) is not None and not isinstance(requested[name], str):
            raise ValueError(f"'user_data.callback.{name}' must be a string")
    if requested.get("report_type") and requested["report_type"] not in report_types:
        raise ValueError(f"'user_data.callback.report_type' must be one of {', '.join(report_types)}")
    if requested.get("view") and requested["view"] not in reports.VIEWS:
        raise ValueError(f"'user_data.callback.view' must be one of {', '.join(reports.VIEWS)}")
    if len(requested.get("url") or "") > outbound.MAX_URL_LENGTH:
        raise ValueError(f"'user_data.callback.url' is longer than {outbound.MAX_URL_LENGTH} characters")
    return requested


def with_scheme(url: str) -> str:
    """The spec's examples give a receiver as `host:port`; such a URL is plain HTTP."""
    return url if "://" in url else f"http://{url}"


def planned_outputs(settings: WorkerSettings, user_data: Any) -> dict[str, dict[str, Any]]:
    """The initial state of every output that applies to a task: the node's settings, and
    the task's own `user_data.callback`."""
    planned: dict[str, dict[str, Any]] = {}
    requested = user_data.get("callback") if isinstance(user_data, dict) else None
    requested = requested if isinstance(requested, dict) else {}
    url = requested.get("url") or settings.callback_url
    if url and not settings.callback_enabled:
        planned[CALLBACK] = {"state": DISABLED, "error": "callbacks are disabled on this node"}
    elif url:
        planned[CALLBACK] = {
            "state": PENDING,
            "attempts": 0,
            "url": with_scheme(url),
            "report_type": requested.get("report_type") or settings.callback_report_type,
            "view": requested.get("view") or settings.callback_view,
        }
    if settings.splunk_url:
        planned[SPLUNK] = {"state": PENDING, "attempts": 0}
    return planned


def queue_outputs(
    store: SyncTaskStore, settings: WorkerSettings, task_id: int, user_data: Any, send: SendDelivery
) -> None:
    """Record the outputs of a task that has just ended, and send a job for each pending one."""
    for name, state in planned_outputs(settings, user_data).items():
        if store.plan_output(task_id, name, state) and state["state"] == PENDING:
            send(task_id, name, 0)


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


def user_data_of(text: str | None) -> dict[str, Any]:
    """A task's stored `user_data` text as an object (empty when absent or not an object)."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def shaped_view(
    fields: dict[str, str],
    settings: WorkerSettings,
    report_type: str,
    view: str | None,
    drop: tuple[str, ...],
) -> bytes:
    """The task as GET /task shapes it, without the delivery state of its outputs (it names
    the receivers, and a callback URL is the submitter's) and without the `drop` fields."""
    query = {"report_type": report_type, **({"view": view} if view else {})}
    report_types = settings.report_types()
    kept = {name: value for name, value in fields.items() if not name.startswith(OUTPUT_FIELD_PREFIX)}
    for name in drop:
        kept.pop(name, None)
    return reports.render_task(kept, reports.parse_options(query, report_types), report_types)


def callback_request(fields: dict[str, str], state: Mapping[str, Any], settings: WorkerSettings) -> Request:
    # The submitter asked for this report: it gets the task as GET /task shows it, file_link too.
    body = shaped_view(fields, settings, state.get("report_type") or "medium", state.get("view"), ())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "scanhub-callback",
        # The same value on every attempt of one task: a receiver can drop repeats.
        "X-Scanhub-Task-Id": fields["task_id"],
    }
    return Request(state["url"], headers, body)


def splunk_request(fields: dict[str, str], settings: WorkerSettings) -> Request:
    # No file_link: a presigned link to the sample is a credential, not an event field.
    report = orjson.loads(shaped_view(fields, settings, settings.splunk_report_type, None, ("file_link",)))
    network = user_data_of(fields.get("user_data")).get("network")
    if network is not None:
        report["network"] = network  # the only part of user_data that leaves the node
    event: dict[str, Any] = {
        "time": report.get("processed") or int(time.time()),
        "host": report.get("worker_hostname") or socket.gethostname(),
        "source": "scanhub",
        "sourcetype": "scanhub:report",
        "event": report,
    }
    if settings.splunk_index:
        event["index"] = settings.splunk_index
    url = (settings.splunk_url or "").rstrip("/")
    if not url.endswith(SPLUNK_PATH):
        url += SPLUNK_PATH
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Splunk {settings.splunk_token or ''}",
    }
    return Request(url, headers, orjson.dumps(event))


@dataclass
class Client:
    """An event loop and an HTTP client through the outbound policy, for one thread."""

    settings: WorkerSettings
    networks: list[outbound.Network]
    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession

    @classmethod
    def build(cls, settings: WorkerSettings) -> Client:
        networks = outbound.parse_networks(settings.outbound_allowed_networks)
        timeout = aiohttp.ClientTimeout(total=settings.output_timeout_seconds, sock_connect=5)
        ssl_context = tls.client_context(settings.output_ca_file)
        loop = asyncio.new_event_loop()

        async def session() -> aiohttp.ClientSession:
            # Idle connections are dropped after 2 s, before most receivers drop them
            # (Node.js and uvicorn: 5 s), so a kept connection is rarely a dead one.
            return outbound.guarded_session(networks, timeout, ssl=ssl_context, keepalive_seconds=2)

        return cls(settings, networks, loop, loop.run_until_complete(session()))

    def send(self, request: Request) -> tuple[int, str]:
        """POST once; again at once if the receiver had closed the kept connection before
        answering (a receiver that dedupes on X-Scanhub-Task-Id takes a repeat anyway)."""
        try:
            return self.loop.run_until_complete(post(request, self.session, self.networks))
        except aiohttp.ServerDisconnectedError:
            return self.loop.run_until_complete(post(request, self.session, self.networks))

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.session.close())
            self.loop.close()


_threads = threading.local()
_clients: list[Client] = []
_clients_lock = threading.Lock()


@atexit.register
def close_clients() -> None:
    """At exit, each thread's client closes its connections (no "unclosed session" noise)."""
    with _clients_lock:
        for client in _clients:
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()


def thread_client(settings: WorkerSettings) -> Client:
    """This thread's client, made at its first delivery and kept. Made per delivery (an SSL
    context loading the CA store, a connector, an event loop), it cost the outputs worker
    tens of milliseconds of CPU per callback; kept, connections to a receiver are reused."""
    client: Client | None = getattr(_threads, "client", None)
    if client is None or client.settings is not settings or client.loop.is_closed():
        client = _threads.client = Client.build(settings)
        with _clients_lock:
            _clients.append(client)
    return client


async def post(
    request: Request, session: aiohttp.ClientSession, networks: list[outbound.Network]
) -> tuple[int, str]:
    """POST through the outbound policy: (status, a short excerpt of the answer)."""
    outbound.check_url(request.url, networks)
    async with session.post(
        request.url, data=request.body, headers=request.headers, allow_redirects=False
    ) as response:
        text = (await response.content.read(MAX_ERROR_TEXT)).decode("utf-8", "replace")
        return response.status, text


def backoff_seconds(settings: WorkerSettings, attempts: int) -> float:
    return float(
        min(settings.output_backoff_max_seconds, settings.output_backoff_seconds * 2 ** (attempts - 1))
    )


def attempt_delivery(store: SyncTaskStore, settings: WorkerSettings, task_id: int, name: str) -> float | None:
    """One delivery attempt of one output; returns the seconds to wait before the next
    attempt, or None when there is nothing more to do (delivered, given up, task gone)."""
    lock_seconds = settings.output_timeout_seconds + 30
    if not store.lock_output(task_id, name, lock_seconds):
        return settings.output_backoff_seconds  # another copy of this job is at it
    locked = True
    try:
        fields = store.get(task_id)
        if fields is None or fields.get("status") not in (DONE, FAILED):
            return None  # deleted (or expired) since it ended
        state = orjson.loads(fields.get(f"{OUTPUT_FIELD_PREFIX}{name}") or "{}")
        if state.get("state") != PENDING:
            return None  # delivered, failed or refused already: never twice
        state["attempts"] = int(state.get("attempts", 0)) + 1
        state["last_attempt_at"] = int(time.time())
        wait = deliver_once(fields, state, settings, name)
        store.end_attempt(task_id, name, state, state["state"] if wait is None else "retried")
        locked = False
        log.info(
            "task %s: %s %s (attempt %d%s)",
            task_id,
            name,
            state["state"] if wait is None else "will be retried",
            state["attempts"],
            f", next in {wait:g} s" if wait is not None else "",
        )
        return wait
    finally:
        if locked:
            store.unlock_output(task_id, name)


def deliver_once(
    fields: dict[str, str], state: dict[str, Any], settings: WorkerSettings, name: str
) -> float | None:
    """POST once and update `state`; returns the wait before a retry, or None."""
    try:
        request = (
            callback_request(fields, state, settings)
            if name == CALLBACK
            else splunk_request(fields, settings)
        )
        status, answer = thread_client(settings).send(request)
    except outbound.Refused as error:
        state.update(state=REFUSED, error=f"refused by the outbound policy: {error}")
        return None
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        state.update(last_status=None, last_error=f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT])
        return retry_or_give_up(state, settings)
    state["last_status"] = status
    if 200 <= status < 300:
        state.update(state=DELIVERED, delivered_at=int(time.time()))
        state.pop("last_error", None)
        return None
    state["last_error"] = f"HTTP {status}: {answer}"[:MAX_ERROR_TEXT]
    if status >= 500 or status in RETRIED_STATUSES:
        return retry_or_give_up(state, settings)
    state["state"] = GAVE_UP
    return None


def retry_or_give_up(state: dict[str, Any], settings: WorkerSettings) -> float | None:
    if state["attempts"] >= settings.output_attempts:
        state["state"] = GAVE_UP
        return None
    wait = backoff_seconds(settings, state["attempts"])
    state["next_attempt_at"] = int(time.time() + wait)
    return wait
