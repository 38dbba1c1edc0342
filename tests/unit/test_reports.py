"""Report shaping on GET /task/{id}: report types, views, field filters, deprecated parameters."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from samples.basic import EICAR, zip_bytes
from worker import reports
from worker.analysis.engine import Submission, analyze_file
from worker.settings import WorkerSettings
from worker.store import done_fields

API = "/api/tiscale/v1"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory) -> list[dict]:
    """A real engine report: a zip holding EICAR and a clean text file."""
    spool = tmp_path_factory.mktemp("spool")
    path = spool / "1"
    path.write_bytes(zip_bytes({"eicar.com": EICAR, "notes.txt": b"see http://example.com/ for more"}))
    return analyze_file(Submission(path, "bundle.zip", settings=WorkerSettings(spool_dir=spool)))


def shape(report, **query):
    return reports.shape_report(report, reports.parse_options(query))


def test_medium_is_the_default_and_summarizes_children(real_report):
    shaped = shape(real_report)
    assert len(shaped) == len(real_report)
    assert shaped[0]["metadata"]["archive"]["format"] == "zip"
    assert "story" in shaped[0] and "interesting_strings" in shaped[0]
    child = shaped[1]
    assert set(child) <= {"index", "parent_relationship", "info", "classification", "indicators", "tags"}
    assert child["classification"]["classification"] == 3


def test_small_is_verdict_and_hashes_with_flagged_children_only(real_report):
    shaped = shape(real_report, report_type="small")
    assert [entry["info"]["file"]["file_path"] for entry in shaped] == ["bundle.zip", "eicar.com"]
    top = shaped[0]
    assert set(top) == {"index", "info", "classification"}
    assert {item["name"] for item in top["info"]["file"]["hashes"]} >= {"md5", "sha1", "sha256", "sha512"}
    assert top["classification"]["classification"] == 3 and top["classification"]["propagated"] is True
    assert "scan_results" not in top["classification"]


def test_large_is_everything_including_childrens_full_entries(real_report):
    assert shape(real_report, report_type="large") == real_report


def test_flat_view_joins_keys_keys_hashes_by_name_and_lists_by_position(real_report):
    flat = shape(real_report, report_type="large", view="flat")
    assert len(flat) == len(real_report)
    top = flat[0]
    assert top["info_file_hashes_sha1"] == next(
        h["value"] for h in real_report[0]["info"]["file"]["hashes"] if h["name"] == "sha1"
    )
    assert top["classification_classification"] == 3
    assert top["classification_propagation_source_file_path"] == "eicar.com"
    assert top["story_0_caption"] == "Summary"
    assert all(not isinstance(value, dict | list) or value == [] for value in top.values())


def test_extended_view_names_container_chains_and_summarizes_the_tree(real_report):
    extended = shape(real_report, report_type="large", view="extended")
    assert extended[0]["summary"]["files"] == 3
    assert extended[0]["summary"]["classifications"]["malicious"] == 2
    assert extended[1]["container_chain"] == ["bundle.zip"]


def test_include_and_exclude_fields_take_dotted_paths_through_lists(real_report):
    included = shape(
        real_report, include_fields='["classification.classification", "info.file.hashes.value"]'
    )
    assert included[0] == {
        "classification": {"classification": 3},
        "info": {
            "file": {"hashes": [{"value": h["value"]} for h in real_report[0]["info"]["file"]["hashes"]]}
        },
    }
    excluded = shape(real_report, exclude_fields='["story", "classification.scan_results"]')
    assert "story" not in excluded[0] and "scan_results" not in excluded[0]["classification"]
    assert excluded[0]["metadata"] == real_report[0]["metadata"]


@pytest.mark.parametrize(
    "query",
    [
        {"report_type": "huge"},
        {"view": "sideways"},
        {"include_fields": "classification"},
        {"include_fields": '{"a": 1}'},
        {"exclude_fields": "[1, 2]"},
        {"full": "perhaps"},
        {"v13": "2"},
    ],
)
def test_malformed_report_options_are_refused(query):
    with pytest.raises(reports.ReportOptionError):
        reports.parse_options(query)


def test_deprecated_full_and_v13_are_accepted():
    assert reports.parse_options({"full": "true"}).report_type == "large"
    assert reports.parse_options({"full": "0"}).report_type == "medium"
    assert reports.parse_options({"full": "1", "report_type": "small"}).report_type == "small"
    assert reports.parse_options({"v13": "1"}).report_type == "medium"


def test_a_site_can_add_its_own_report_type_from_a_json_file(tmp_path: Path, real_report):
    definitions = tmp_path / "types.json"
    definitions.write_text(
        json.dumps({"hashes-only": {"file": {"include": ["info.file.hashes"]}, "children": "none"}})
    )
    types = reports.site_report_types(definitions)
    shaped = reports.shape_report(
        real_report, reports.parse_options({"report_type": "hashes-only"}, types), types
    )
    assert shaped == [{"info": {"file": {"hashes": real_report[0]["info"]["file"]["hashes"]}}}]


async def test_task_endpoint_applies_report_type_and_view(worker_api, real_report):
    await worker_api.upload()
    await worker_api.redis.hset(
        worker_api.store.keys.task(1), mapping=done_fields(real_report, {}, int(time.time()))
    )
    small = await (await worker_api.client.get(f"{API}/task/1?report_type=small")).json()
    assert len(small["tc_report"]) == 2
    flat = await (await worker_api.client.get(f"{API}/task/1?report_type=large&view=flat")).json()
    assert "info_file_hashes_md5" in flat["tc_report"][0]
    full = await (await worker_api.client.get(f"{API}/task/1?full=true")).json()
    assert full["tc_report"] == real_report


async def test_task_endpoint_answers_400_on_bad_report_options(worker_api):
    await worker_api.upload()
    for query in ("report_type=huge", "view=odd", "include_fields=[oops", "exclude_fields=%5B1%5D"):
        response = await worker_api.client.get(f"{API}/task/1?{query}")
        assert response.status == 400, query
        assert "message" in await response.json()
