"""Hostile input against a real Worker node: each is refused or analyzed, never a 5xx, and
leaves the node's memory and spool as it found them. Each test prints its figures (peak RSS
of the API and of the Celery processes, spool bytes left)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import psutil

from samples.basic import EICAR, many_entries_zip_bytes, zip_bomb_bytes, zip_bytes
from samples.yara import minimal_pe
from tests.support.client import API, submit, upload, wait_for_task

MB = 1024**2


def spool_bytes(node) -> int:
    return sum(path.stat().st_size for path in Path(node.env["SCANHUB_SPOOL_DIR"]).iterdir())


def tree_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return sum(part.memory_info().rss for part in (process, *process.children(recursive=True)))
    except psutil.Error:
        return 0


@contextmanager
def peak_rss(node) -> Iterator[dict[str, int]]:
    """Peak RSS of the node's API process and of its Celery processes while the block runs."""
    figures = {"api": 0, "celery": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            figures["api"] = max(figures["api"], tree_rss(node.api.pid))
            figures["celery"] = max(figures["celery"], tree_rss(node.celery.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield figures
    finally:
        stop.set()
        sampler.join()


def report(name: str, figures: dict[str, int], node) -> None:
    print(
        f"\n{name}: peak RSS API {figures['api'] / MB:.0f} MB, Celery {figures['celery'] / MB:.0f} MB, "
        f"spool bytes left {spool_bytes(node)}"
    )


async def raw_post(node, body: bytes, content_type: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{node.url}{API}/upload", data=body, headers={"Content-Type": content_type}
        ) as response,
    ):
        text = await response.text()
        assert "Traceback" not in text
        assert response.content_type == "application/json", text[:200]
        return response.status


async def test_malformed_multipart_bodies_are_4xx_and_leave_nothing(worker_nodes):
    node = worker_nodes()
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'.encode()
    many_parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{number}"\r\n\r\nx\r\n'.encode()
        for number in range(10_000)
    )
    with_boundary, closing = f"multipart/form-data; boundary={boundary}", f"--{boundary}--\r\n".encode()
    long_header = f"--{boundary}\r\nX-Long: ".encode() + b"a" * MB + b"\r\n\r\n"
    cases = {
        "no boundary": (part + b"data\r\n", "multipart/form-data"),
        "truncated": (part + b"data without its closing boundary", with_boundary),
        "10,000 parts": (many_parts + closing, with_boundary),
        "1 MB header line": (long_header + closing, with_boundary),
    }
    with peak_rss(node) as figures:
        for name, (body, content_type) in cases.items():
            status = await raw_post(node, body, content_type)
            assert 400 <= status < 500, (name, status)
    report("malformed multipart", figures, node)
    assert spool_bytes(node) == 0
    assert figures["api"] < 300 * MB


async def test_a_thousand_concurrent_uploads_against_a_small_queue_lose_nothing(worker_nodes):
    node = worker_nodes(max_queue_depth="20")
    statuses: list[int] = []
    task_urls: list[str] = []
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(number: int) -> None:
            response = await upload(session, node.url, f"file {number}".encode())
            statuses.append(response.status)
            if response.status == 200:
                task_urls.append((await response.json())["task_url"])
            else:
                assert response.headers.get("Retry-After"), response.status

        with peak_rss(node) as figures:
            await asyncio.gather(*(one(number) for number in range(1000)))
            views = [await wait_for_task(session, url, timeout=120) for url in task_urls]
    counts = {status: statuses.count(status) for status in set(statuses)}
    report(f"1,000 concurrent uploads ({counts})", figures, node)
    assert set(counts) <= {200, 503}
    assert counts.get(503, 0) > 0  # the queue limit refused some
    assert [view["status"] for view in views] == ["done"] * len(task_urls)  # every accepted one ended


def hostile_archives() -> dict[str, bytes]:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        for name, kind in (("evil-link", tarfile.SYMTYPE), ("hard", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            archive.addfile(info)
        for name in ("/etc/absolute", "../../escape", "a" * 5000, "nul\0name"):
            info = tarfile.TarInfo(name)
            info.size = len(EICAR)
            archive.addfile(info, io.BytesIO(EICAR))
    lying_pe = bytearray(minimal_pe())
    struct.pack_into("<I", lying_pe, 0x3C, 0x7FFFFFF0)  # e_lfanew far past the end
    truncated_zip = zip_bytes({"big.bin": bytes(range(256)) * 4000}, method=zipfile.ZIP_DEFLATED)
    quine_like = EICAR
    for level in range(40):  # the same zip in itself, 40 levels: what a zip quine unpacks to
        quine_like = zip_bytes({f"level{level}.zip" if level else "eicar.com": quine_like})
    return {
        "flat bomb (10 GiB)": zip_bomb_bytes(members=10, member_bytes=1024**3),
        "quine-like nesting (40 levels)": quine_like,
        "nested bomb": zip_bytes(
            {"inner.zip": zip_bomb_bytes(members=4, member_bytes=1024**3)}, zipfile.ZIP_STORED
        ),
        "100,000 members": many_entries_zip_bytes(100_000),
        "links, absolute, .. and odd names": tar.getvalue(),
        "PE with a lying header": bytes(lying_pe),
        "truncated deflate": truncated_zip[: len(truncated_zip) // 2],
    }


async def test_hostile_archives_end_as_reports_in_bounded_memory_and_leave_no_file(worker_nodes):
    node = worker_nodes()
    async with aiohttp.ClientSession() as session:
        for name, data in hostile_archives().items():
            with peak_rss(node) as figures:
                view = await wait_for_task(session, await submit(session, node.url, data), timeout=120)
            report(name, figures, node)
            assert view["status"] == "done", (name, view.get("error"))
            # Member names are reported as found, never used as paths, and bounded in length.
            paths = [entry["info"]["file"]["file_path"] for entry in view["tc_report"]]
            assert all(len(path) <= 1024 and "\0" not in path for path in paths)
            spool = Path(node.env["SCANHUB_SPOOL_DIR"])
            assert not Path("/etc/absolute").exists() and not (spool / "../../escape").exists()
            assert spool_bytes(node) == 0, name
            assert figures["celery"] < 1024 * MB, name


async def test_json_nested_100k_deep_is_refused_in_user_data_and_left_out_as_custom_data(worker_nodes):
    node = worker_nodes()
    deep = "[" * 100_000 + "]" * 100_000
    async with aiohttp.ClientSession() as session:
        response = await upload(session, node.url, b"x", "x.bin", None, user_data=deep)
        assert response.status == 400
        assert "user_data" in json.loads(await response.text())["message"]
        # custom_data that does not parse is accepted and left out of the report (the spec).
        accepted = await upload(session, node.url, b"fine", "y.bin", None, custom_data=deep)
        assert accepted.status == 200
        view = await wait_for_task(session, (await accepted.json())["task_url"])
        assert view["status"] == "done" and "custom_data" not in view
    assert spool_bytes(node) <= len(b"fine")
