"""The scanhub CLI's parts on their own: file selection, --resume, exit codes, plain output,
and its HTTP client against in-process services (uploads, retries, bearer tokens, status)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer

from cli.client import BearerTokens, ServiceError, StaticToken, connect, default_url
from cli.cluster import read_status
from cli.display import PlainProgress, plain_table, print_verdicts, result_line
from cli.files import LocalFile, local_file, select_files
from cli.results import FileResult, ResultFiles, load_finished, read_finished, resume_key
from cli.scan import ScanOptions, scan_file
from cli.verdicts import (
    DONE,
    ERROR,
    EXIT_ERROR,
    EXIT_FLAGGED,
    EXIT_OK,
    FAILED,
    Verdict,
    count_children,
    exit_code,
    verdict_of,
)
from tests.support.json_server import JsonHandler


def write(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def done_result(file: LocalFile, classification: int = 1, threat: str = "") -> FileResult:
    return FileResult(
        file,
        DONE,
        "ab" * 32,
        "http://w/api/tiscale/v1/task/1",
        [],
        verdict=Verdict("Text", classification, threat, 0),
    )


def a_file(tmp_path: Path, name: str = "a.txt", content: bytes = b"abc") -> LocalFile:
    path = write(tmp_path / name, content)
    return local_file(str(path), os.stat(path))


# -- which files a scan sends


def test_folders_are_walked_in_name_order_without_following_links(tmp_path: Path):
    tree = tmp_path / "tree"
    write(tree / "b.txt")
    write(tree / "a.txt")
    write(tree / "sub" / "c.bin")
    outside = write(tmp_path / "outside" / "secret.txt")
    (tree / "link-to-file").symlink_to(outside)
    (tree / "link-to-folder").symlink_to(outside.parent, target_is_directory=True)
    os.mkfifo(tree / "pipe")
    selection = select_files([str(tree)])
    assert [file.path for file in selection.files] == [
        f"{tree}/a.txt",
        f"{tree}/b.txt",
        f"{tree}/sub/c.bin",
    ]
    assert selection.skipped_links == 2
    assert selection.skipped_special == 1
    assert selection.total_bytes == 3


def test_a_file_reached_twice_is_sent_once_and_a_link_named_on_the_command_line_is_followed(tmp_path: Path):
    target = write(tmp_path / "data" / "one.txt", b"one")
    link = tmp_path / "named-link"
    link.symlink_to(target)
    selection = select_files([str(link), str(tmp_path / "data"), str(target)])
    assert [file.path for file in selection.files] == [str(link)]
    assert selection.files[0].size == 3
    assert selection.files[0].abspath == os.path.abspath(link)
    missing = select_files([str(tmp_path / "gone")])
    assert missing.files == [] and missing.unreadable == [f"{tmp_path / 'gone'}: No such file or directory"]


# -- --resume and --output


def test_resume_counts_only_done_lines_of_unchanged_files(tmp_path: Path):
    unchanged, changed, failed = (
        a_file(tmp_path, "same"),
        a_file(tmp_path, "changed"),
        a_file(tmp_path, "bad"),
    )
    records = [
        done_result(unchanged).record(),
        done_result(changed).record(),
        FileResult(failed, FAILED, error="analysis timed out").record(),
    ]
    text = "\n".join(json.dumps(record) for record in records) + '\n{"path": "/cut-off", "si\n\n[1, 2]\n'
    finished = read_finished(io.StringIO(text))
    assert finished.unreadable_lines == 2
    write(Path(changed.path), b"abcd")  # a new size: it is sent again
    now = local_file(changed.path, os.stat(changed.path))
    assert resume_key(unchanged) in finished.records
    assert resume_key(now) not in finished.records
    assert resume_key(failed) not in finished.records  # failed files are tried again
    assert load_finished(tmp_path / "never-written.jsonl").records == {}


def test_a_resumed_record_keeps_its_verdict(tmp_path: Path):
    file = a_file(tmp_path)
    report = [
        {
            "classification": {"classification": 3, "result": "Test.EICAR"},
            "info": {"file": {"file_type": "Text"}},
        }
    ]
    record = json.loads(
        json.dumps(FileResult.from_task(file, "ab", "u", {"status": "done", "tc_report": report}).record())
    )
    result = FileResult.from_record(file, record)
    assert result.resumed and result.state == DONE
    assert result.verdict == Verdict("Text", 3, "Test.EICAR", 0)
    assert record["verdict"] == {
        "classification": "malicious",
        "threat_name": "Test.EICAR",
        "file_type": "Text",
        "children": 0,
    }


def test_results_append_to_the_resume_file_and_rewrite_the_output_file(tmp_path: Path):
    file = a_file(tmp_path)
    resume, output = tmp_path / "resume.jsonl", tmp_path / "out.jsonl"
    resume.write_text('{"path": "/earlier", "size": 1, "mtime_ns": 1, "state": "do')  # cut off mid-line
    output.write_text("from an earlier run\n")
    files = ResultFiles(output, resume)
    files.write(FileResult(file, ERROR, error="HTTP 413: too large"))
    files.close()
    assert (
        output.read_text().count("\n") == 1
        and json.loads(output.read_text())["error"] == "HTTP 413: too large"
    )
    lines = resume.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["state"] == ERROR
    # --output naming the --resume file: one file, appended to, each line once.
    same = ResultFiles(resume, resume)
    same.write(done_result(file))
    same.close()
    assert len(resume.read_text().splitlines()) == 3 and same.paths == [resume]


# -- verdicts and exit codes


def test_an_error_wins_over_a_verdict_and_fail_on_counts_its_level_and_above():
    assert exit_code([DONE, DONE], [1, 0], "suspicious") == EXIT_OK
    assert exit_code([DONE, DONE], [2, 0], "suspicious") == EXIT_FLAGGED
    assert exit_code([DONE, DONE], [2, 0], "malicious") == EXIT_OK
    assert exit_code([DONE, DONE], [3, 0], "suspicious") == EXIT_FLAGGED
    assert exit_code([DONE, DONE], [3], None) == EXIT_OK
    assert exit_code([DONE, ERROR], [3], "malicious") == EXIT_ERROR
    assert exit_code([FAILED], [], None) == EXIT_ERROR
    assert exit_code([], [], "malicious") == EXIT_OK


def test_children_come_from_the_file_statistics_whatever_the_report_type_dropped():
    stats = {"file_stats": [{"type": "Archive", "count": 1}, {"type": "Text", "count": 4}]}
    small = [{"info": {"statistics": stats}}, {"index": 3}]  # only the flagged child is listed
    assert count_children(small) == 4
    assert count_children([{"info": {}}, {}, {}]) == 2  # no statistics: the entries listed
    assert count_children(None) == 0
    view = {
        "tc_report": [
            {
                "classification": {"classification": True},
                "info": {"file": {"file_type": "PE", "file_subtype": "Exe"}},
            }
        ]
    }
    assert verdict_of(view) == Verdict("PE/Exe", 0, "", 0)


# -- output without a terminal


def test_plain_progress_writes_a_line_per_file_and_a_summary_every_interval(tmp_path: Path):
    now = [100.0]
    stream = io.StringIO()
    progress = PlainProgress(stream, 2, 3000, every=10, clock=lambda: now[0])
    file = a_file(tmp_path)
    progress.bytes_sent(1500)
    progress.finished(done_result(file, 3, "Test.EICAR"))
    progress.tick()  # too early for a summary
    now[0] += 10
    progress.tick()
    progress.finished(FileResult(file, ERROR, error="HTTP 413: too large"))
    assert stream.getvalue().splitlines() == [
        f"[1/2] {file.path}  malicious  Test.EICAR",
        "-- 1/2 files, 1.5 kB of 3.0 kB sent, 0.1 files/s, 10 s",
        f"[2/2] {file.path}  error  HTTP 413: too large",
    ]
    assert result_line(3, 9, done_result(file, 1)) == f"[3/9] {file.path}  goodware"


def test_the_verdict_table_is_plain_aligned_text_off_a_terminal(tmp_path: Path):
    good, bad = a_file(tmp_path, "good.txt"), a_file(tmp_path, "x.com")
    stream = io.StringIO()
    print_verdicts(
        stream,
        [done_result(good, 1), done_result(bad, 3, "Test.EICAR"), FileResult(bad, FAILED, error="timed out")],
    )
    lines = stream.getvalue().splitlines()
    width = len(good.path)
    assert lines[0] == "file".ljust(width) + "  type  classification  threat / error  children"
    assert lines[2].split() == [bad.path, "Text", "malicious", "Test.EICAR", "0"]
    assert lines[3].split() == [bad.path, "failed", "timed", "out"]
    assert lines[4] == "3 files: 1 malicious, 1 goodware, 1 failed"
    assert all(ord(character) < 128 for character in stream.getvalue())  # no box drawing, no escapes
    assert plain_table(["a", "bb"], [["long", 1]]) == "a     bb\nlong  1"


def test_the_default_url_is_the_environment_s_or_the_local_hub():
    assert default_url({}) == "http://127.0.0.1:8080"
    assert default_url({"SCANHUB_HUB_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert default_url({"SCANHUB_URL": "https://hub:443", "SCANHUB_HUB_PORT": "9000"}) == "https://hub:443"


# -- the HTTP client against in-process services


async def serve(routes: list[web.RouteDef]) -> tuple[TestServer, str]:
    app = web.Application()
    app.add_routes(routes)
    server = TestServer(app)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


async def serve_uploads(received: list[tuple[str | None, bytes]]) -> tuple[TestServer, str]:
    """A stand-in Worker: each upload's part (file name, content) goes to `received`, and its
    one task is done at once, with an empty report."""
    url = ""

    async def upload(request: web.Request) -> web.Response:
        part = await (await request.multipart()).next()
        assert isinstance(part, BodyPartReader)
        received.append((part.filename, await part.read()))
        return web.json_response({"task_url": f"{url}/api/tiscale/v1/task/1"})

    async def task(request: web.Request) -> web.Response:
        return web.json_response({"status": "done", "tc_report": []})

    server, url = await serve(
        [web.post("/api/tiscale/v1/upload", upload), web.get("/api/tiscale/v1/task/1", task)]
    )
    return server, url


class Counter:
    def __init__(self) -> None:
        self.bytes = 0

    def bytes_sent(self, count: int) -> None:
        self.bytes += count

    def finished(self, result: FileResult) -> None:
        return None

    def tick(self) -> None:
        return None


async def test_an_upload_streams_the_file_retries_after_503_and_follows_its_task(tmp_path: Path):
    content = os.urandom(700_000)  # several blocks
    file = a_file(tmp_path, 'odd "name".bin', content)
    received: list[dict[str, Any]] = []
    polls = []

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        assert isinstance(part, BodyPartReader)
        data = await part.read()
        received.append(
            {
                "name": part.filename,
                "sha256": hashlib.sha256(data).hexdigest(),
                "length": request.content_length,
            }
        )
        if len(received) == 1:
            return web.json_response(
                {"message": "the Worker is overloaded"}, status=503, headers={"Retry-After": "7"}
            )
        return web.json_response({"task_url": f"{url}/api/tiscale/v1/task/5"})

    async def task(request: web.Request) -> web.Response:
        polls.append(dict(request.query))
        if len(polls) < 3:
            return web.json_response({"status": "analyzing", "tc_report": None})
        report = [
            {
                "classification": {"classification": 2, "result": "Heur.Thing"},
                "info": {"file": {"file_type": "Binary"}},
            }
        ]
        return web.json_response({"status": "done", "processed": 1, "tc_report": report})

    server, url = await serve(
        [web.post("/api/tiscale/v1/upload", upload), web.get("/api/tiscale/v1/task/5", task)]
    )
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    try:
        async with connect(StaticToken("T" * 40)) as client:
            client.sleep = no_sleep
            progress = Counter()
            result = await scan_file(client, ScanOptions(url, report_type="small"), file, progress)
    finally:
        await server.close()
    sha256 = hashlib.sha256(content).hexdigest()
    assert [(item["name"], item["sha256"]) for item in received] == [("odd %22name%22.bin", sha256)] * 2
    assert received[0]["length"] is not None  # a Content-Length, not chunked
    assert waits == [7.0]
    assert progress.bytes == len(content)  # the retried attempt is not counted twice
    assert polls == [{"report_type": "small"}] * 3
    assert (result.state, result.sha256, result.task_url) == (DONE, sha256, f"{url}/api/tiscale/v1/task/5")
    assert result.verdict == Verdict("Binary", 2, "Heur.Thing", 0)


async def test_a_refusal_is_final_and_a_file_that_changes_while_sent_is_an_error(tmp_path: Path):
    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"message": "the upload is larger than the limit"}, status=413)

    server, url = await serve([web.post("/api/tiscale/v1/upload", refuse)])
    file = a_file(tmp_path, "grows.bin", b"a" * 1000)
    try:
        async with connect(StaticToken("T" * 40)) as client:
            refused = await scan_file(client, ScanOptions(url), file, Counter())
            write(Path(file.path), b"a" * 2000)
            changed = await scan_file(client, ScanOptions(url), file, Counter())
            Path(file.path).unlink()
            gone = await scan_file(client, ScanOptions(url), file, Counter())
    finally:
        await server.close()
    assert (refused.state, refused.error) == (ERROR, "HTTP 413: the upload is larger than the limit")
    assert changed.error == "cannot send the file: the file grew while it was sent (more than 1000 bytes)"
    assert gone.error == "cannot read the file: No such file or directory"


async def test_bearer_tokens_are_asked_of_each_service_and_renewed_before_they_expire():
    issued: list[str] = []
    now = [0.0]

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        assert (form["grant_type"], form["client_id"], form["client_secret"]) == (
            "client_credentials",
            "ci",
            "S" * 40,
        )
        issued.append(request.host)
        return web.json_response(
            {"access_token": f"jwt{len(issued)}", "token_type": "Bearer", "expires_in": 300}
        )

    async def echo(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Bearer jwt-stale":
            return web.json_response({"message": "the bearer token has expired"}, status=401)
        return web.json_response({"authorization": request.headers.get("Authorization")})

    routes = [web.post("/api/auth/v1/token", token), web.get("/echo", echo)]
    (first, first_url), (second, second_url) = await serve(routes), await serve(routes)
    bearer = BearerTokens("ci", "S" * 40, clock=lambda: now[0])
    try:
        async with connect(bearer) as client:
            seen = [await client.get_json(f"{first_url}/echo"), await client.get_json(f"{first_url}/echo")]
            seen.append(await client.get_json(f"{second_url}/echo"))  # another service: its own bearer
            now[0] = 280.0  # 20 s left: renewed
            seen.append(await client.get_json(f"{first_url}/echo"))
            bearer.tokens[first_url] = (
                "jwt-stale",
                1000.0,
            )  # the service no longer takes it: asked anew once
            seen.append(await client.get_json(f"{first_url}/echo"))
    finally:
        await first.close()
        await second.close()
    assert [item["authorization"] for item in seen] == [
        "Bearer jwt1",
        "Bearer jwt1",
        "Bearer jwt2",
        "Bearer jwt3",
        "Bearer jwt4",
    ]
    assert len(issued) == 4


async def test_status_uses_the_status_route_and_falls_back_where_there_is_none():
    hub_status = {
        "service": "hub",
        "workers": [],
        "throughput": {"interval_seconds": 60, "finished": [1, 2]},
        "verdicts": {"malicious": 1},
    }

    async def hub_health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "checks": {"workers_total": 1, "workers_healthy": 1}})

    async def worker_health(request: web.Request) -> web.Response:
        checks = {"queue_depth": 4, "celery_workers": ["a@h", "b@h"], "queue": "overloaded"}
        return web.json_response(
            {"status": "unhealthy", "checks": checks}, status=503, headers={"Retry-After": "5"}
        )

    async def status(request: web.Request) -> web.Response:
        return web.json_response(hub_status)

    new_hub, new_url = await serve([web.get("/health", hub_health), web.get("/api/hub/v1/status", status)])
    old_worker, old_url = await serve([web.get("/health", worker_health)])
    try:
        async with connect(StaticToken("T" * 40)) as client:
            found = await read_status(client, new_url)
            fallback = await read_status(client, old_url)
            with pytest.raises(ServiceError, match="HTTP 404"):
                await client.get_json(f"{old_url}/api/hub/v1/workers")
    finally:
        await new_hub.close()
        await old_worker.close()
    assert {key: found[key] for key in hub_status} == hub_status
    assert found["health"]["status"] == "ok"
    assert fallback == {
        "service": "worker",
        "health": {
            "status": "unhealthy",
            "checks": {"queue_depth": 4, "celery_workers": ["a@h", "b@h"], "queue": "overloaded"},
        },
        "queue_depth": 4,
        "celery_workers": 2,
    }


async def test_https_is_verified_against_the_ca_file(tmp_path: Path):
    """A service with a certificate from scanhub's own CA: trusted with --ca-file, refused without."""
    from common import tls

    files = tls.ensure_certificate(tmp_path / "tls", ["127.0.0.1", "localhost"])

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    server = TestServer(app, scheme="https")
    await server.start_server(ssl=tls.server_context(files.certificate, files.key))
    url = f"https://127.0.0.1:{server.port}"
    try:
        async with connect(StaticToken("T" * 40), ca_file=files.ca) as client:
            assert await client.get_json(f"{url}/health") == {"status": "ok"}
        async with connect(StaticToken("T" * 40)) as client:
            with pytest.raises(ServiceError, match="certificate verify failed"):
                await client.get_json(f"{url}/health")
    finally:
        await server.close()


def test_status_shows_workers_throughput_and_verdicts_as_plain_lines():
    from cli.cluster import print_status

    hub = {
        "service": "hub",
        "health": {"status": "ok", "checks": {"workers_healthy": 1, "workers_total": 2}},
        "workers": [
            {
                "url": "http://w1:8081",
                "healthy": True,
                "queue_depth": 3,
                "tasks_forwarded": 40,
                "last_error": None,
                "status": {"celery_workers": 2},
            },
            {
                "url": "http://w2:8081",
                "healthy": False,
                "queue_depth": None,
                "tasks_forwarded": 7,
                "last_error": "HTTP 503",
                "status": None,
            },
        ],
        "throughput": {"interval_seconds": 60, "done": [0, 5, 12]},
        "verdicts": {"malicious": 1, "suspicious": 0, "goodware": 9, "unknown": 30},
    }
    stream = io.StringIO()
    print_status(stream, "http://hub:8080", hub)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Hub http://hub:8080: ok (1 of 2 Workers healthy)"
    assert lines[1] == "Workers"
    assert lines[3].split() == ["http://w1:8081", "yes", "3", "40", "2"]
    assert lines[4].split() == ["http://w2:8081", "no", "7", "HTTP", "503"]
    assert lines[5] == "Throughput: 17 finished in the last 3 intervals of 60 s (oldest first: 0 5 12)"
    assert lines[6] == "Verdicts: 1 malicious, 0 suspicious, 9 goodware, 30 unknown"

    worker = {
        "service": "worker",
        "health": {"status": "unhealthy"},
        "queue_depth": 9,
        "celery_workers": 1,
        "tasks": {"done": 5, "failed": 1},
    }
    stream = io.StringIO()
    print_status(stream, "http://w2:8081", worker)
    assert stream.getvalue().splitlines() == [
        "Worker http://w2:8081: unhealthy",
        "Queue depth: 9",
        "Celery workers: 1",
        "Tasks: 5 done, 1 failed",
        "Throughput: not reported by this service (it has no status route)",
        "Verdicts: not reported by this service (it has no status route)",
    ]


async def scan_with_task_reads_refused(
    tmp_path: Path, status: int, message: str, report_type: str | None = None
) -> tuple[list[str], Any]:
    """Five files scanned one at a time against a Worker that takes uploads and answers every
    task read with `status`: the uploads it saw, and the scan's state."""
    from cli.scan import ScanState, run_scan

    uploads: list[str] = []

    async def upload(request: web.Request) -> web.Response:
        await request.read()
        uploads.append(request.path)
        return web.json_response({"task_url": f"{url}/api/tiscale/v1/task/{len(uploads)}"})

    async def task(request: web.Request) -> web.Response:
        return web.json_response({"message": message}, status=status)

    server, url = await serve(
        [web.post("/api/tiscale/v1/upload", upload), web.get("/api/tiscale/v1/task/{id}", task)]
    )
    files = [a_file(tmp_path, f"f{number}.txt") for number in range(5)]
    state = ScanState()
    try:
        async with connect(StaticToken("T" * 40)) as client:
            options = ScanOptions(url, concurrency=1, report_type=report_type)
            await run_scan(client, options, files, PlainProgress(None, 5, 15), ResultFiles(None, None), state)
    finally:
        await server.close()
    return uploads, state


async def test_a_refused_report_type_stops_the_scan_after_the_first_file(tmp_path: Path):
    message = "unknown report_type 'smal'; use one of large, medium, small"
    uploads, state = await scan_with_task_reads_refused(tmp_path, 400, message, report_type="smal")
    assert len(uploads) == 1
    assert [result.state for result in state.results] == [ERROR]
    assert state.stopped == f"HTTP 400: {message}"


async def test_progress_stays_right_when_a_retry_fails_before_sending_anything(tmp_path: Path):
    from cli.scan import upload

    file = a_file(tmp_path, "retried.bin", b"z" * 5000)

    class FlakyClient:
        async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
            async for _ in kwargs["body"]():
                pass  # the first attempt sends the file, then a 503
            kwargs["on_retry"]()
            kwargs["on_retry"]()  # the next attempt cannot connect: nothing was sent
            async for _ in kwargs["body"]():
                pass  # the third one goes through
            return 200, {"task_url": "http://w/api/tiscale/v1/task/1"}

    progress = Counter()
    await upload(FlakyClient(), ScanOptions("http://w"), file, progress)  # type: ignore[arg-type]
    assert progress.bytes == 5000


def test_a_resumed_file_counts_with_the_verdict_recorded_whatever_its_report_holds(tmp_path: Path):
    file = a_file(tmp_path)
    # A report type without `classification`: only the recorded verdict says "malicious".
    record = done_result(file, 3, "Test.EICAR").record()
    record["report"] = [{"info": {"file": {"file_type": "Text"}}}]
    result = FileResult.from_record(file, json.loads(json.dumps(record)))
    assert result.verdict == Verdict("Text", 3, "Test.EICAR", 0)
    assert exit_code([result.state], [result.verdict.classification], "malicious") == EXIT_FLAGGED
    # A line without a verdict (or a garbled one): the report's, as before.
    record.pop("verdict")
    assert FileResult.from_record(file, record).verdict == Verdict("Text", 0, "", 0)
    record["verdict"] = {"classification": "evil"}
    assert FileResult.from_record(file, record).verdict == Verdict("Text", 0, "", 0)


def test_search_takes_only_an_md5_sha1_or_sha256():
    from click.testing import CliRunner

    from cli.main import cli

    dead = "http://127.0.0.1:9"
    for digest in ("../../admin/v1/tokens", "abc", "g" * 64, "a" * 63, "a" * 32 + "?x=1"):
        result = CliRunner().invoke(cli, ["search", digest, "--url", dead])
        assert result.exit_code == 2, (digest, result.output)
        assert "32, 40 or 64 hex digits" in result.output


# -- hostile names and answers


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_file_name_that_is_not_utf8_is_sent_recorded_and_shown(tmp_path: Path, monkeypatch):
    path = tmp_path / os.fsdecode(b"\xffbad.bin")
    file = local_file(str(write(path, b"odd")), os.stat(path))
    received: list[tuple[str | None, bytes]] = []
    server, url = await serve_uploads(received)
    try:
        async with connect(StaticToken("T" * 40)) as client:
            result = await scan_file(client, ScanOptions(url), file, Counter())
            monkeypatch.setattr("cli.scan.wait_for_task", fail_unexpectedly)
            unexpected = await scan_file(client, ScanOptions(url), file, Counter())
    finally:
        await server.close()
    assert [name for name, _ in received] == ["%FFbad.bin"] * 2 and result.state == DONE
    # Anything unforeseen is that file's error; the scan goes on.
    assert (unexpected.state, unexpected.error) == (ERROR, "unexpected RuntimeError: boom")
    # Written without failing, and --resume finds it again by its path.
    resume = tmp_path / "resume.jsonl"
    outputs = ResultFiles(None, resume)
    outputs.write(result)
    outputs.close()
    assert resume_key(file) in load_finished(resume).records
    stream = io.StringIO()
    print_verdicts(stream, [result])
    assert "\\xffbad.bin" in stream.getvalue()


async def fail_unexpectedly(*args: Any) -> None:
    raise RuntimeError("boom")


def test_anything_unexpected_ends_the_command_with_one_error_line_and_exit_2(
    tmp_path: Path, monkeypatch, capsys
):
    from cli import main

    def broken(*args: Any, **kwargs: Any) -> None:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(main, "select_files", broken)
    monkeypatch.setattr("sys.argv", ["scanhub", "scan", str(tmp_path), "--url", "http://127.0.0.1:9"])
    with pytest.raises(SystemExit) as exited:
        main.main()
    assert exited.value.code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected UnicodeEncodeError") and err.count("\n") == 1
    assert "Traceback" not in err


def test_names_and_server_strings_are_neither_markup_nor_control_codes(tmp_path: Path, monkeypatch):
    from cli.display import print_table
    from cli.lookup import print_search

    monkeypatch.setenv("TERM", "xterm")
    names = ["[bold]y.txt", "invoice[draft].pdf", "[/x]z.bin"]
    terminal = Terminal()
    print_table(terminal, ["file"], [[name] for name in names])
    shown = terminal.getvalue()
    assert all(name in shown for name in names)
    assert "\x1b[1my.txt" not in shown  # not made bold
    answer = {
        "sha256": "ab" * 32,
        "tasks": [{"task_url": "u", "status": "done", "threat_name": "[red]X[/]", "file_name": "[/x]"}],
        "partial": [{"worker": "http://w\x1b[2J", "error": "HTTP 503\nforged line"}],
    }
    out, err = Terminal(), io.StringIO()
    print_search(out, err, answer)
    assert "[red]X[/]" in out.getvalue() and "[/x]" in out.getvalue()
    assert (
        err.getvalue()
        == "warning: http://w\\x1b[2J did not answer, its tasks are missing: HTTP 503\\nforged line\n"
    )
    # Off a terminal, a name's control characters are written as escapes, on one line.
    file = a_file(tmp_path, "evil\x1b[31m\nforged.txt")
    plain_out = io.StringIO()
    print_verdicts(plain_out, [FileResult(file, ERROR, error="HTTP 400: bad\x07\r")])
    assert "\x1b" not in plain_out.getvalue() and "\x07" not in plain_out.getvalue()
    assert plain_out.getvalue().count("\n") == 3
    assert "evil\\x1b[31m\\nforged.txt" in plain_out.getvalue() and "bad\\x07\\r" in plain_out.getvalue()
    assert result_line(1, 1, FileResult(file, ERROR, error="x\ny")).endswith("forged.txt  error  x\\ny")


class Answers(JsonHandler):
    """A service answering each path with the JSON set in `answers` (404 for the others)."""

    answers: dict[str, Any] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in self.answers:
            self.answer(self.answers[path])
        else:
            self.answer({"message": "no such route"}, 404)


@pytest.fixture
def answering() -> Iterator[tuple[str, dict[str, Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Answers.answers = {}
    try:
        yield f"http://127.0.0.1:{server.server_port}", Answers.answers
    finally:
        server.shutdown()
        server.server_close()


def test_malformed_status_and_search_answers_are_an_error_line_not_a_traceback(answering):
    from click.testing import CliRunner

    from cli.main import cli

    url, answers = answering
    hub_health = {"status": "ok", "checks": {"workers_total": 1, "workers_healthy": 1}}
    sha = "ab" * 32
    cases = [
        ({"/health": {"status": "ok", "checks": [1, 2]}}, ["status"]),  # a Worker's checks, not a dict
        ({"/health": hub_health, "/api/hub/v1/status": {"service": "hub", "workers": 5}}, ["status"]),
        ({"/health": hub_health, "/api/hub/v1/workers": [1, 2]}, ["status"]),
        ({"/health": hub_health, "/api/hub/v1/status": [1]}, ["status"]),
        ({f"/api/scanhub/v1/samples/{sha}": {"tasks": 5}}, ["search", sha]),
        ({f"/api/scanhub/v1/samples/{sha}": ["not", "an", "answer"]}, ["search", sha]),
    ]
    for served, command in cases:
        answers.clear()
        answers.update(served)
        result = CliRunner().invoke(cli, [*command, "--url", url])
        assert result.exit_code == EXIT_ERROR, (served, result.output, result.exception)
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    # A Worker that did not answer, named by a bare string: still a warning, not a crash.
    answers.clear()
    answers[f"/api/scanhub/v1/samples/{sha}"] = {"sha256": sha, "tasks": [], "partial": ["http://w:8081"]}
    result = CliRunner().invoke(cli, ["search", sha, "--url", url])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "warning: http://w:8081 did not answer" in result.output


async def test_credentials_never_go_over_plain_http_when_the_url_is_https():
    from cli.client import Authorization

    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"access_token": "jwt", "expires_in": 300, "status": "done"})

    server, http_url = await serve([web.route("*", "/{tail:.*}", anything)])
    task_url = f"{http_url}/api/tiscale/v1/task/1"  # as an upload to https://hub might answer
    try:
        for authorization in (StaticToken("T" * 40), BearerTokens("ci", "S" * 40)):
            async with connect(authorization, url="https://hub.example:8443") as client:
                with pytest.raises(ServiceError, match="refusing to send credentials in cleartext"):
                    await client.get_json(task_url)
        assert seen == []  # neither the token nor the client secret (for a bearer) was sent
        async with connect(Authorization(), url="https://hub.example:8443") as client:
            assert (await client.get_json(task_url))["status"] == "done"  # no credentials: no secret to leak
        async with connect(StaticToken("T" * 40), url=http_url) as client:
            assert (await client.get_json(task_url))["status"] == "done"  # --url http: as asked
    finally:
        await server.close()
    assert seen == ["/api/tiscale/v1/task/1"] * 2


@pytest.mark.parametrize("status", [401, 403])
async def test_a_task_refused_for_its_authorization_stops_the_scan(tmp_path: Path, status: int):
    message = "the authorization token is not valid"
    uploads, state = await scan_with_task_reads_refused(tmp_path, status, message)
    assert len(uploads) == 1
    assert state.stopped == f"HTTP {status}: {message}"


async def test_a_file_swapped_for_a_link_or_another_file_after_the_walk_is_not_sent(tmp_path: Path):
    tree = tmp_path / "tree"
    for name in ("swapped-for-link.txt", "swapped-for-file.txt", "kept.txt"):
        write(tree / name, b"selected")
    secret = write(tmp_path / "outside" / "secret.txt", b"outside the tree")
    selection = select_files([str(tree)])
    named_link = tmp_path / "named-link"
    named_link.symlink_to(secret)
    selection.files += select_files([str(named_link)]).files
    by_name = {Path(file.path).name: file for file in selection.files}
    # Between the walk and the upload: a link where a file was, and another file renamed over one.
    (tree / "swapped-for-link.txt").unlink()
    (tree / "swapped-for-link.txt").symlink_to(secret)
    os.replace(write(tmp_path / "other.txt", b"selected"), tree / "swapped-for-file.txt")
    received: list[tuple[str | None, bytes]] = []
    server, url = await serve_uploads(received)
    try:
        async with connect(StaticToken("T" * 40)) as client:
            results = {
                name: await scan_file(client, ScanOptions(url), file, Counter())
                for name, file in by_name.items()
            }
    finally:
        await server.close()
    assert results["swapped-for-link.txt"].state == ERROR
    assert results["swapped-for-link.txt"].error == (
        "cannot send the file: it was replaced by a symbolic link since it was selected"
    )
    assert results["swapped-for-file.txt"].error == (
        "cannot send the file: it was replaced by another file since it was selected"
    )
    # The untouched file, and a link named on the command line (followed, as documented), are sent.
    assert results["kept.txt"].state == DONE and results["named-link"].state == DONE
    assert sorted(content for _, content in received) == [b"outside the tree", b"selected"]


def test_the_scan_s_own_result_files_in_the_tree_are_not_sent(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    tree = tmp_path / "tree"
    write(tree / "a.txt")
    write(tree / "out.jsonl", b'{"from": "an earlier run"}\n')
    write(tree / "sub" / "resume.jsonl", b'{"from": "an earlier run"}\n')
    sent: list[str] = []

    async def scan_files(auth: Any, ca_file: Any, options: Any, files: list[LocalFile], *rest: Any) -> None:
        sent.extend(Path(file.path).name for file in files)

    monkeypatch.setattr(main, "scan_files", scan_files)
    monkeypatch.chdir(tmp_path)
    arguments = ["scan", "tree", "--output", "tree/out.jsonl", "--resume", str(tree / "sub" / "resume.jsonl")]
    result = CliRunner().invoke(main.cli, [*arguments, "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert sent == ["a.txt"]
    assert "skipped 2 result file(s) of this scan (--output, --resume)" in result.output


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (BrokenPipeError(32, "Broken pipe"), None),  # the output was closed: Click's exit 1 becomes 2
        (ExceptionGroup("unhandled errors in a TaskGroup", [OSError(28, "No space left on device")]),
         "error: unexpected OSError: [Errno 28] No space left on device\n"),
    ],
)  # fmt: skip
def test_a_closed_output_or_a_failed_task_group_exits_2_not_1(
    tmp_path: Path, monkeypatch, capsys, raised, message
):
    from cli import main

    def broken(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(main, "select_files", broken)
    monkeypatch.setattr("sys.argv", ["scanhub", "scan", str(tmp_path), "--url", "http://127.0.0.1:9"])
    with pytest.raises(SystemExit) as exited:
        main.main()
    assert exited.value.code == EXIT_ERROR
    if message is not None:
        assert capsys.readouterr().err == message


async def test_a_file_name_with_control_characters_is_sent_percent_encoded(tmp_path: Path):
    file = a_file(tmp_path, "esc\x1b[31m\tred\nx.bin")
    received: list[tuple[str | None, bytes]] = []
    server, url = await serve_uploads(received)
    try:
        async with connect(StaticToken("T" * 40)) as client:
            from cli.scan import upload as send

            await send(client, ScanOptions(url), file, Counter())  # an invalid header would be refused: 400
    finally:
        await server.close()
    assert [name for name, _ in received] == ["esc%1B[31m%09red%0Ax.bin"]
