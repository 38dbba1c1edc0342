"""The engine benchmark runs end to end in its tiny mode and prints its figures."""

from __future__ import annotations

from bench import engine


def test_engine_bench_tiny_mode_prints_files_and_megabytes_per_second_for_both_rulesets(capsys):
    results = engine.main(["--tiny"])
    assert set(results) == {"default", "large"}
    assert results["large"]["rules"] > results["default"]["rules"]
    for figures in results.values():
        assert figures["files"] == 14 and figures["entries"] > figures["files"]
        assert figures["files_per_second"] > 0 and figures["mb_per_second"] > 0
    printed = capsys.readouterr().out
    assert printed.count("files/s") == 2 and "MB/s" in printed


def test_generated_ruleset_compiles_to_the_requested_number_of_rules(tmp_path):
    from worker.analysis import ruleset

    for name, text in engine.generated_ruleset(250, seed=3).items():
        (tmp_path / name).write_text(text)
    compiled = ruleset.compile_ruleset(tmp_path)
    assert compiled.rule_count == 250
    assert not any(item.errors for item in compiled.files)
