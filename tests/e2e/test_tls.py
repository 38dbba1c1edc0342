"""HTTPS end to end: a Hub and a Worker with certificates from one CA made at first start."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from deploy.launcher import LocalCluster
from deploy.processes import free_port
from tests.e2e.conftest import HUB_TEST_SETTINGS, clean_environment
from tests.support.client import submit, wait_for_task


async def test_uploads_reports_and_the_hubs_view_of_workers_go_over_verified_https(tmp_path):
    environment = {**clean_environment(), **HUB_TEST_SETTINGS, "SCANHUB_TLS": "on"}
    cluster = LocalCluster(
        tmp_path / "state", workers=1, hub_port=free_port(), worker_port=free_port(),
        environment=environment, log_dir=tmp_path,
    )  # fmt: skip
    try:
        cluster.start()  # waits for the Hub to see its Worker healthy: it verified the Worker's certificate
        assert cluster.hub_url.startswith("https://") and cluster.ca_file is not None
        trusted = ssl.create_default_context(cafile=str(cluster.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as session:
            task_url = await submit(session, cluster.hub_url, b"over https")
            assert task_url.startswith("https://127.0.0.1:")
            assert (await wait_for_task(session, task_url))["status"] == "done"
        # A client that does not trust scanhub's CA is refused; plain HTTP is told to use HTTPS.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{cluster.hub_url}/health")
            async with session.get(cluster.hub_url.replace("https://", "http://") + "/health") as plain:
                assert plain.status == 400
                assert "speaks HTTPS" in (await plain.json())["message"]
    finally:
        cluster.stop()
