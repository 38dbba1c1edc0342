"""The engine inside a real Worker node: Celery processes, the YARA endpoints, shaped reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aiohttp

from samples.basic import EICAR, aes_zip_bytes
from tests.support.client import API, submit, wait_for_task
from worker.settings import DEFAULT_RULES_DIR

MARKER_RULE = """
rule Integration_Marker
{
    meta:
        threat_name = "Text.Test.IntegrationMarker"
        classification = "malicious"
        factor = 3
    strings:
        $marker = "scanhub-integration-marker"
    condition:
        $marker
}
"""


async def test_node_finds_eicar_in_aes_zip_and_picks_up_a_changed_ruleset(worker_nodes, tmp_path: Path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    node = worker_nodes(yara_rules_dir=str(rules_dir), yara_check_interval_seconds="0.2")
    sample = b"nothing to see here but scanhub-integration-marker\n"
    async with aiohttp.ClientSession() as session:
        archive = aes_zip_bytes({"eicar.com": EICAR}, b"node-password")
        user_data = json.dumps({"password_list": ["node-password"]})
        task_url = await submit(session, node.url, archive, filename="locked.zip", user_data=user_data)
        view = await wait_for_task(session, task_url, timeout=60)
        assert view["status"] == "done", view
        assert view["tc_report"][0]["classification"]["classification"] == 3
        assert view["tc_report"][1]["info"]["file"]["file_path"] == "eicar.com"

        before = await (await session.get(f"{node.url}{API}/yara")).json()
        first = await wait_for_task(session, await submit(session, node.url, sample, filename="a.txt"), 60)
        assert first["tc_report"][0]["classification"]["classification"] == 0

        (rules_dir / "marker.yar").write_text(MARKER_RULE)
        (rules_dir / "broken.yar").write_text("rule Broken { condition: missing_thing }\n")
        async with session.post(f"{node.url}{API}/pull/all") as response:
            assert response.status == 200
        after = await (await session.get(f"{node.url}{API}/yara")).json()
        assert after["id"] != before["id"]
        async with session.get(f"{node.url}/api/tiscale/v2/sync-status?errorOnly=true") as response:
            status = await response.json()
        assert [item["key"] for item in status["rulesets"]] == ["broken.yar"]

        second = await wait_for_task(session, await submit(session, node.url, sample, filename="a.txt"), 60)
        verdict = second["tc_report"][0]["classification"]
        assert verdict["result"] == "Text.Test.IntegrationMarker"
        assert second["tc_report"][0]["info"]["ruleset_id"] == after["id"]
        small = await (await session.get(second_url(second, node))).json()
        assert set(small["tc_report"][0]) == {"index", "info", "classification"}


def second_url(view, node) -> str:
    return f"{node.url}{API}/task/{view['task_id']}?report_type=small"
