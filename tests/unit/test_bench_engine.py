"""The engine benchmark runs end to end in its tiny mode and prints its figures."""

from __future__ import annotations

import pytest

from bench import engine


def test_engine_bench_tiny_mode_prints_files_and_megabytes_per_second_for_both_rulesets(capsys):
    results = engine.main(["--tiny"])
    assert set(results) == {"default", "large", "yara"}
    assert results["large"]["rules"] > results["default"]["rules"]
    for label in ("default", "large"):
        figures = results[label]
        assert figures["files"] == 14 and figures["entries"] > figures["files"]
        assert figures["files_per_second"] > 0 and figures["mb_per_second"] > 0
    yara = results["yara"]
    assert yara["rules"] == results["large"]["rules"] and yara["files_left_out"] == 0
    assert yara["raw_ms_per_file"] > 0 and yara["engine_ms_per_file"] > yara["raw_ms_per_file"]
    printed = capsys.readouterr().out
    assert printed.count("files/s") == 2 and "MB/s" in printed and "engine / raw YARA" in printed


def test_bench_with_a_rule_directory_of_ones_own_reports_compile_raw_scan_engine_and_left_out_files(
    tmp_path, capsys
):
    from bench.__main__ import main

    rules = tmp_path / "community" / "yara"
    rules.mkdir(parents=True)
    for name, text in engine.generated_ruleset(160, seed=5, files=4).items():
        (rules / name).write_text(text)
    (rules / "broken.yar").write_text("rule Broken { condition: nonsense( }\n")
    output = tmp_path / "results.json"
    results = main(
        ["--quick", "--engine-only", "--corpora", "mixed", "--rules", str(rules), "--output", str(output)]
    )
    assert results["options"]["rules"] == str(rules.resolve())
    yara = results["yara"]
    assert yara["rules"] == 160 and list(yara["left_out"]) == ["broken.yar"]
    assert yara["compile_seconds"] > 0 and yara["raw_ms_per_file"] > 0
    assert yara["engine_over_raw"] == pytest.approx(
        yara["engine_ms_per_file"] / yara["raw_ms_per_file"], rel=0.05
    )
    assert results["corpora"]["mixed"]["engine"]["files_per_second"] > 0
    printed = capsys.readouterr().out
    assert "compile" in printed and "engine / raw YARA" in printed and "left out: broken.yar" in printed


def test_generated_ruleset_compiles_to_the_requested_number_of_rules(tmp_path):
    from worker.analysis import ruleset

    for name, text in engine.generated_ruleset(250, seed=3).items():
        (tmp_path / name).write_text(text)
    compiled = ruleset.compile_ruleset(tmp_path)
    assert compiled.rule_count == 250
    assert not any(item.errors for item in compiled.files)
