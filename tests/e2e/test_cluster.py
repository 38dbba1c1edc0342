"""A Hub in front of two Worker nodes, all as processes: spread, reports, failover, recovery.

Each test runs twice: on loopback, and with the client, the Hub and each Worker node in its
own network namespace (skipped when that is not possible here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from tests.support.client import API, submit, upload, wait_for_task


def worker_of(task_url: str, cluster) -> int:
    for index, node in enumerate(cluster.nodes):
        if task_url.startswith(f"{node.url}{API}/task/"):
            return index
    raise AssertionError(f"{task_url} points at no Worker node")


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_twenty_files_split_ten_and_ten_and_each_report_comes_from_its_worker(cluster):
    files = {f"file{index:02}.txt": f"sample {index}\n".encode() * (index + 1) for index in range(20)}
    with cluster.client() as client_address:
        async with aiohttp.ClientSession() as session:
            task_urls = await asyncio.gather(
                *(
                    submit(
                        session,
                        cluster.hub_url,
                        content,
                        filename=name,
                        custom_data=json.dumps({"name": name}),
                        headers={"X-Forwarded-For": "203.0.113.9"} if index % 2 else None,
                    )
                    for index, (name, content) in enumerate(files.items())
                )
            )
            assert Counter(worker_of(url, cluster) for url in task_urls) == {0: 10, 1: 10}
            for index, ((name, content), task_url) in enumerate(zip(files.items(), task_urls, strict=True)):
                view = await wait_for_task(session, task_url)  # straight from the Worker
                assert view["status"] == "done", view
                assert view["custom_data"] == {"name": name}
                hashes = {
                    item["name"]: item["value"] for item in view["tc_report"][0]["info"]["file"]["hashes"]
                }
                assert hashes["sha1"] == hashlib.sha1(content).hexdigest()
                expected_chain = ["203.0.113.9", client_address] if index % 2 else [client_address]
                assert view["forwarded_for"] == expected_chain
                assert view["direct_sender"] == cluster.addresses["hub"]
            task_path = task_urls[0].split(API, 1)[1]
            async with session.get(f"{cluster.hub_url}{API}{task_path}") as on_hub:
                assert on_hub.status == 400
                assert "task_url" in (await on_hub.json())["message"]
        assert [worker["tasks_forwarded"] for worker in cluster.workers()] == [10, 10]


async def test_a_worker_killed_mid_run_leaves_rotation_loses_no_file_and_returns_after_restart(cluster):
    with cluster.client():
        async with aiohttp.ClientSession() as session:
            accepted: list[str] = []
            refused: list[int] = []
            limit = asyncio.Semaphore(4)

            async def send(index: int) -> None:
                # Each analysis takes a moment, so the kill lands with jobs queued and running.
                content = f"SLEEP:0.2\nfile {index}\n".encode()
                async with limit:
                    response = await upload(session, cluster.hub_url, content, filename=f"f{index}")
                if response.status == 200:
                    accepted.append((await response.json())["task_url"])
                else:
                    refused.append(response.status)

            sending = [asyncio.create_task(send(index)) for index in range(40)]

            def on_first_worker() -> int:
                return Counter(worker_of(url, cluster) for url in accepted)[0]

            # Answers arrive in any order, so wait until the Worker to be killed holds files.
            await eventually(lambda: on_first_worker() >= 4, 60, "files accepted by the first Worker")
            cluster.kill(0)
            await asyncio.gather(*sending)
            assert refused == [], "the Hub should have retried every failed forward on the other Worker"
            assert len(accepted) == 40
            assert on_first_worker() >= 4  # ... and every one of them must still end done

            cluster.wait_rotation([False, True])
            while_down = [await submit(session, cluster.hub_url, b"while down") for _ in range(4)]
            assert {worker_of(url, cluster) for url in while_down} == {1}

            cluster.restart(0)
            cluster.wait_rotation([True, True])
            after_restart = [await submit(session, cluster.hub_url, b"after restart") for _ in range(4)]
            assert Counter(worker_of(url, cluster) for url in after_restart) == {0: 2, 1: 2}

            for task_url in accepted + while_down + after_restart:
                view = await wait_for_task(session, task_url, timeout=120)
                assert view["status"] == "done", view


async def test_with_both_workers_down_the_hub_answers_503_with_retry_after(cluster):
    with cluster.client():
        async with aiohttp.ClientSession() as session:
            cluster.kill(0)
            cluster.kill(1)
            cluster.wait_rotation([False, False])
            response = await upload(session, cluster.hub_url, b"nowhere to go")
            assert response.status == 503
            assert int(response.headers["Retry-After"]) > 0
            assert "no healthy Worker" in (await response.json())["message"]
            async with session.get(f"{cluster.hub_url}/health") as health:
                assert health.status == 503

            cluster.restart(1)
            cluster.wait_rotation([False, True])
            task_url = await submit(session, cluster.hub_url, b"back again")
            assert worker_of(task_url, cluster) == 1
            assert (await wait_for_task(session, task_url))["status"] == "done"


# On loopback only: what it checks does not depend on addresses (and CI time is counted).
@pytest.mark.parametrize("cluster", ["loopback"], indirect=True)
async def test_search_by_hash_through_the_hub_merges_every_worker_and_names_one_that_is_down(cluster):
    repeated = b"the same attachment, seen twice\n"
    with cluster.client():
        async with aiohttp.ClientSession() as session:
            first = await submit(session, cluster.hub_url, repeated, filename="a.txt")
            await asyncio.sleep(1.1)  # `submitted` counts whole seconds: the second one is newer
            second = await submit(session, cluster.hub_url, repeated, filename="b.txt")
            await submit(session, cluster.hub_url, b"something else\n")
            assert {worker_of(first, cluster), worker_of(second, cluster)} == {0, 1}
            for task_url in (first, second):
                await wait_for_task(session, task_url)
            sha256 = hashlib.sha256(repeated).hexdigest()
            for digest in (sha256, hashlib.md5(repeated).hexdigest(), hashlib.sha1(repeated).hexdigest()):
                async with session.get(f"{cluster.hub_url}/api/scanhub/v1/samples/{digest}") as response:
                    assert response.status == 200
                    found = await response.json()
                assert found["sha256"] == sha256 and found["partial"] == []
                # Newest first, each entry with the task_url its own Worker serves.
                assert [entry["task_url"] for entry in found["tasks"]] == [second, first]
                assert [entry["found_as"] for entry in found["tasks"]] == ["file", "file"]
            cluster.kill(worker_of(first, cluster))
            async with session.get(f"{cluster.hub_url}/api/scanhub/v1/samples/{sha256}") as response:
                assert response.status == 200
                found = await response.json()
            assert [entry["task_url"] for entry in found["tasks"]] == [second]
            assert [item["worker"] for item in found["partial"]] == [
                cluster.nodes[worker_of(first, cluster)].url
            ]
            async with session.get(f"{cluster.hub_url}/api/scanhub/v1/samples/not-a-hash") as response:
                assert response.status == 400
