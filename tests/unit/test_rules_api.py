"""YARA endpoints of the Worker API: GET /yara, GET /v2/sync-status, POST /pull/all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from worker.settings import DEFAULT_RULES_DIR

TOKEN_ADMIN = "A" * 40


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


async def test_yara_id_changes_when_a_rule_file_changes(make_worker_api, rules_dir: Path):
    api = await make_worker_api(yara_rules_dir=rules_dir, yara_check_interval_seconds=0)
    first = await (await api.client.get("/api/tiscale/v1/yara")).json()
    assert len(first["id"]) == 40
    again = await (await api.client.get("/api/tiscale/v1/yara")).json()
    assert again == first
    (rules_dir / "extra.yar").write_text('rule Extra { strings: $a = "extra-marker" condition: $a }\n')
    changed = await (await api.client.get("/api/tiscale/v1/yara")).json()
    assert changed["id"] != first["id"]


async def test_sync_status_lists_rulesets_and_shows_a_broken_one_with_its_error(make_worker_api, rules_dir):
    (rules_dir / "broken.yar").write_text("rule Broken { condition: nonsense( }\n")
    api = await make_worker_api(yara_rules_dir=rules_dir, yara_check_interval_seconds=0)
    response = await api.client.get("/api/tiscale/v2/sync-status")
    assert response.status == 200
    body = await response.json()
    assert isinstance(body["revision"], int)
    keys = {item["key"]: item for item in body["rulesets"]}
    assert {
        "eicar.yar",
        "office_macros.yar",
        "pe_overlay.yar",
        "script_downloaders.yar",
        "broken.yar",
    } <= set(keys)
    assert keys["eicar.yar"]["errors"] == []
    assert keys["broken.yar"]["errors"] and "nonsense" in keys["broken.yar"]["errors"][0]
    assert set(keys["eicar.yar"]) == {"revision", "key", "hash", "errors"}
    errors_only = await (await api.client.get("/api/tiscale/v2/sync-status?errorOnly=true")).json()
    assert [item["key"] for item in errors_only["rulesets"]] == ["broken.yar"]
    bad = await api.client.get("/api/tiscale/v2/sync-status?errorOnly=maybe")
    assert bad.status == 400


async def test_pull_all_rereads_rules_at_once_despite_the_check_interval(make_worker_api, rules_dir):
    api = await make_worker_api(yara_rules_dir=rules_dir, yara_check_interval_seconds=3600)
    first = (await (await api.client.get("/api/tiscale/v1/yara")).json())["id"]
    (rules_dir / "extra.yar").write_text('rule Extra { strings: $a = "extra-marker" condition: $a }\n')
    assert (await (await api.client.get("/api/tiscale/v1/yara")).json())["id"] == first
    response = await api.client.post("/api/tiscale/v1/pull/all")
    assert response.status == 200
    body = await response.json()
    assert body["id"] != first
    assert (await (await api.client.get("/api/tiscale/v1/yara")).json())["id"] == body["id"]


async def test_pull_all_is_417_when_synchronization_is_disabled(make_worker_api, rules_dir):
    api = await make_worker_api(yara_rules_dir=rules_dir, yara_sync_enabled=False)
    response = await api.client.post("/api/tiscale/v1/pull/all")
    assert response.status == 417
    assert "disabled" in (await response.json())["message"]


async def test_yara_endpoints_belong_to_the_admin_token_group(make_worker_api, rules_dir):
    api = await make_worker_api(yara_rules_dir=rules_dir, admin_tokens=[TOKEN_ADMIN])
    assert (await api.client.get("/api/tiscale/v1/yara")).status == 401
    wrong = await api.client.get("/api/tiscale/v1/yara", headers={"Authorization": "Token " + "B" * 40})
    assert wrong.status == 403
    ok = await api.client.get("/api/tiscale/v1/yara", headers={"Authorization": f"Token {TOKEN_ADMIN}"})
    assert ok.status == 200


async def test_sync_status_lists_only_the_file_left_out_of_a_community_set_with_its_compiler_error(
    make_worker_api, rules_dir
):
    from samples.yara import EXTERNALS_RULES, MODULE_RULES, SYNTAX_ERROR_RULE

    for name, text in {**MODULE_RULES, "externals.yar": EXTERNALS_RULES}.items():
        (rules_dir / name).write_text(text)
    (rules_dir / "broken.yar").write_text(SYNTAX_ERROR_RULE)
    api = await make_worker_api(yara_rules_dir=rules_dir, yara_check_interval_seconds=0)
    body = await (await api.client.get("/api/tiscale/v2/sync-status")).json()
    keys = {item["key"]: item["errors"] for item in body["rulesets"]}
    assert {"externals.yar", "mod_pe.yar", "mod_dotnet.yar", "eicar.yar"} <= set(keys)
    assert {key for key, errors in keys.items() if errors} == {"broken.yar"}
    assert "syntax error" in keys["broken.yar"][0]
    errors_only = await (await api.client.get("/api/tiscale/v2/sync-status?errorOnly=true")).json()
    assert errors_only["rulesets"] == [item for item in body["rulesets"] if item["key"] == "broken.yar"]
