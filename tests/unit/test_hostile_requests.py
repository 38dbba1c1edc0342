"""Hostile requests to the Worker API: 400s, never 500s, and shaping that stays cheap."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import orjson
import pytest

from worker import reports
from worker.store import done_fields

pytestmark = pytest.mark.unit
API = "/api/tiscale/v1"


def big_report(entries: int) -> list[dict]:
    return [
        {
            "index": index,
            "classification": {"classification": 0, "factor": 0},
            "info": {"file": {"file_name": f"f{index}", "hashes": [{"name": "md5", "value": "0" * 32}]}},
            **({"parent_relationship": {"parent_index": 0, "relationship": "container"}} if index else {}),
        }
        for index in range(entries)
    ]


async def stored(worker_api, report: list[dict]) -> int:
    await worker_api.upload()
    await worker_api.redis.hset(
        worker_api.store.keys.task(1), mapping=done_fields(report, {}, int(time.time()))
    )
    return 1


async def test_too_many_or_too_deep_field_paths_are_a_400(worker_api):
    await stored(worker_api, big_report(3))
    cases = {
        "300 fields": json.dumps([f"f{number}" for number in range(300)]),
        "nested 1100 deep": "[" * 1100 + "]" * 1100,  # deeper would not fit in a request line
        "17 parts": json.dumps([".".join(["a"] * 17)]),
    }
    for name, text in cases.items():
        response = await worker_api.client.get(f"{API}/task/1", params={"include_fields": text})
        assert response.status == 400, name
        assert "include_fields" in (await response.json())["message"], name


async def test_the_largest_allowed_filter_on_a_1001_entry_report_is_linear(worker_api):
    await stored(worker_api, big_report(1001))
    fields = json.dumps([f"info.file.f{number}" for number in range(reports.MAX_FIELDS - 1)] + ["index"])
    started = time.perf_counter()
    response = await worker_api.client.get(f"{API}/task/1", params={"include_fields": fields})
    elapsed = time.perf_counter() - started
    print(f"\n{reports.MAX_FIELDS} fields on a 1001-entry report: {elapsed * 1000:.0f} ms")
    assert response.status == 200
    assert [entry["index"] for entry in (await response.json())["tc_report"]] == list(range(1001))


@pytest.mark.parametrize(("entries", "off_loop"), [(3, False), (3000, True)])
async def test_large_reports_are_shaped_off_the_event_loop(worker_api, monkeypatch, entries, off_loop):
    await stored(worker_api, big_report(entries))
    threads = []
    real = reports.shape_report

    def recording(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "shape_report", recording)
    response = await worker_api.client.get(f"{API}/task/1?report_type=large")
    assert response.status == 200
    assert threads == [not off_loop]


async def raw_request(worker_api, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (a client library would refuse non-UTF-8 headers)."""
    server = worker_api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        head + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


def multipart(filename: bytes) -> tuple[bytes, bytes]:
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename
        + b'"\r\n\r\ncontent\r\n--' + boundary + b"--\r\n"
    )  # fmt: skip
    return b"multipart/form-data; boundary=" + boundary, body


@pytest.mark.parametrize(
    ("header", "value"),
    [(b"X-TiScale-Token", b"\xff\xfe token"), (b"X-Forwarded-For", b"10.0.0.1, \xc3\x28")],
)
async def test_non_utf8_headers_are_accepted_or_refused_never_a_500(worker_api, header, value):
    content_type, body = multipart(b"a.txt")
    head = b"POST " + API.encode() + b"/upload HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type
    status, answer = await raw_request(worker_api, head + b"\r\n" + header + b": " + value, body)
    assert status in (200, 400), answer
    assert b"Traceback" not in answer
    orjson.loads(answer)


async def test_a_non_utf8_filename_is_kept_readable_not_a_500(worker_api):
    content_type, body = multipart(b"r\xe9sum\xe9.exe")
    head = b"POST " + API.encode() + b"/upload HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type
    status, answer = await raw_request(worker_api, head, body)
    assert status == 200, answer
    record = await worker_api.store.get(1)
    assert record is not None and record["file_name"].startswith("r") and record["file_name"].endswith(".exe")


async def test_a_client_that_disconnects_mid_upload_leaves_no_file_and_no_traceback(worker_api, caplog):
    caplog.set_level(logging.INFO)
    server = worker_api.client.server
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST " + f"{API}/upload".encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\npart of a file'
    )
    await writer.drain()
    await asyncio.sleep(0.1)  # the handler is now reading the body
    writer.transport.abort()  # the client vanishes
    for _ in range(100):
        if not worker_api.spool_files():
            break
        await asyncio.sleep(0.02)
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]
    assert worker_api.spool_files() == []
