"""YARA rulesets: compiled once per revision, broken files isolated, changes noticed by the engine."""

from __future__ import annotations

import os
from pathlib import Path

from samples.basic import EICAR
from worker.analysis import ruleset

NEW_RULE = """
rule Marker_String
{
    meta:
        threat_name = "Text.Test.Marker"
        classification = "suspicious"
        factor = 2
    strings:
        $marker = "scanhub-marker-7f3a"
    condition:
        $marker
}
"""


def test_unchanged_rules_are_compiled_once_not_per_file(rules_dir: Path, monkeypatch):
    calls = []
    real = ruleset.compile_ruleset

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(ruleset, "compile_ruleset", counted)
    monkeypatch.setattr(ruleset, "_cache", {})
    first = ruleset.current_ruleset(rules_dir, check_interval=0)
    for _ in range(5):
        assert ruleset.current_ruleset(rules_dir, check_interval=0) is first
    assert len(calls) == 1
    assert first.rule_count >= 5


def test_ruleset_id_changes_exactly_when_rule_contents_change(rules_dir: Path):
    before = ruleset.current_ruleset(rules_dir, check_interval=0)
    # Touching a file (same contents) keeps the id.
    eicar = rules_dir / "eicar.yar"
    os.utime(eicar, ns=(eicar.stat().st_atime_ns, eicar.stat().st_mtime_ns + 5_000_000_000))
    assert ruleset.current_ruleset(rules_dir, check_interval=0).ruleset_id == before.ruleset_id
    (rules_dir / "marker.yar").write_text(NEW_RULE)
    after = ruleset.current_ruleset(rules_dir, check_interval=0)
    assert after.ruleset_id != before.ruleset_id
    (rules_dir / "marker.yar").unlink()
    assert ruleset.current_ruleset(rules_dir, check_interval=0).ruleset_id == before.ruleset_id


def test_broken_rule_file_is_reported_with_its_error_and_the_others_keep_matching(rules_dir: Path, analyze):
    (rules_dir / "broken.yar").write_text('rule Broken { strings: $a = "x" condition: $b }\n')
    compiled = ruleset.current_ruleset(rules_dir, check_interval=0)
    status = ruleset.sync_status(compiled, errors_only=True)
    assert [item["key"] for item in status["rulesets"]] == ["broken.yar"]
    assert "undefined string" in status["rulesets"][0]["errors"][0]
    full = ruleset.sync_status(compiled)
    assert {item["key"] for item in full["rulesets"]} >= {"broken.yar", "eicar.yar"}
    assert all(len(item["hash"]) == 40 for item in full["rulesets"])
    report = analyze(EICAR, "eicar.com")
    assert report[0]["classification"]["result"] == "Text.Test.EICAR"


def test_a_new_rule_changes_the_next_report_and_its_ruleset_id(rules_dir: Path, analyze):
    sample = b"hello scanhub-marker-7f3a world"
    first = analyze(sample, "a.txt")
    assert first[0]["classification"]["classification"] == 0
    (rules_dir / "marker.yar").write_text(NEW_RULE)
    second = analyze(sample, "a.txt")
    assert second[0]["classification"]["result"] == "Text.Test.Marker"
    assert second[0]["info"]["ruleset_id"] != first[0]["info"]["ruleset_id"]


def test_check_interval_defers_looking_at_the_directory(rules_dir: Path):
    first = ruleset.current_ruleset(rules_dir, check_interval=3600)
    (rules_dir / "marker.yar").write_text(NEW_RULE)
    assert ruleset.current_ruleset(rules_dir, check_interval=3600) is first
    assert ruleset.current_ruleset(rules_dir, check_interval=3600, force=True).ruleset_id != first.ruleset_id


def test_missing_rules_directory_gives_an_empty_ruleset_not_a_failure(
    tmp_path: Path, analyze, engine_settings
):
    empty = ruleset.current_ruleset(tmp_path / "nowhere", check_interval=0)
    assert empty.files == () and empty.rules is None
    report = analyze(EICAR, "eicar.com", yara_rules_dir=tmp_path / "nowhere")
    assert report[0]["classification"]["classification"] == 0


def test_a_pull_request_token_makes_a_process_reread_despite_the_check_interval(
    rules_dir: Path, tmp_path: Path
):
    marker = tmp_path / ruleset.PULL_MARKER
    first = ruleset.current_ruleset(rules_dir, check_interval=3600, pull_marker=marker)
    (rules_dir / "marker.yar").write_text(NEW_RULE)
    assert ruleset.current_ruleset(rules_dir, check_interval=3600, pull_marker=marker) is first
    ruleset.request_pull(tmp_path)
    pulled = ruleset.current_ruleset(rules_dir, check_interval=3600, pull_marker=marker)
    assert pulled.ruleset_id != first.ruleset_id
    assert ruleset.current_ruleset(rules_dir, check_interval=3600, pull_marker=marker) is pulled
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(ruleset.PULL_MARKER)] == [
        ruleset.PULL_MARKER
    ]
