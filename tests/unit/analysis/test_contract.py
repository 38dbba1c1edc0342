"""The analyzer contract: one module and one registry line add an analyzer; the engine routes,
times, limits and labels failures; heuristics come from one table; time limits cannot be swallowed."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samples.basic import EICAR, pdf_with_javascript
from worker.analysis import heuristics, registry
from worker.analysis.context import CLASSIFICATION_CODES, AnalysisTimeout, Analyzer
from worker.analysis.engine import Submission, analyze_file

MALICIOUS = 3
REVERSER_MODULE = '''
"""Test analyzer: a text file starting with REVERSED: holds another file, byte-reversed."""
from worker.analysis.context import Analyzer


def run(context):
    data = context.path.read_bytes()[len(b"REVERSED:"):]
    context.extraction.members += 1
    context.extract("reversed.bin", data[::-1])
    return {"tags": ["reversed-payload"]}


ANALYZER = Analyzer(
    name="reverser",
    version="1",
    run=run,
    accepts=("Text",),
    when=lambda context: context.head.startswith(b"REVERSED:"),
    extracts=True,
)
'''


def load_module(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def analyzers_run(entry) -> list[str]:
    return [run["name"] for run in entry["info"]["analyzers"]]


def test_an_analyzer_added_in_one_module_and_one_registry_line_extracts_a_child_analyzed_like_any_file(
    analyze, monkeypatch, tmp_path
):
    module = load_module(tmp_path / "reverser.py", REVERSER_MODULE)
    monkeypatch.setattr(registry, "ANALYZERS", (*registry.ANALYZERS, module.ANALYZER))
    report = analyze(b"REVERSED:" + EICAR[::-1], "note.txt")
    assert len(report) == 2
    assert "reverser" in analyzers_run(report[0])
    assert "reversed-payload" in report[0]["tags"]
    assert report[1]["info"]["file"]["file_path"] == "reversed.bin"
    assert report[1]["classification"]["classification"] == MALICIOUS
    assert report[0]["classification"]["propagated"] is True
    assert report[0]["metadata"]["archive"]["format"] == "reverser"
    # Not routed to files it does not accept.
    assert "reverser" not in analyzers_run(analyze(b"just text\n" * 20, "plain.txt")[0])


def test_files_are_routed_only_to_analyzers_that_accept_their_type(analyze):
    text = analyze(b"hello world, nothing here\n" * 10, "notes.txt")[0]
    pdf = analyze(pdf_with_javascript(), "form.pdf")[0]
    assert {"identify", "strings", "yara"} <= set(analyzers_run(text))
    assert not {"pe", "elf", "pdf", "office", "zip"} & set(analyzers_run(text))
    assert "pdf" in analyzers_run(pdf)
    assert "pe" not in analyzers_run(pdf)


def test_each_analyzer_run_is_timed_versioned_and_has_an_outcome_in_the_entry(analyze):
    entry = analyze(pdf_with_javascript(), "form.pdf")[0]
    runs = entry["info"]["analyzers"]
    assert runs and all(set(run) == {"name", "version", "duration_ms", "outcome"} for run in runs)
    assert all(run["duration_ms"] >= 0 and run["outcome"] == "ok" for run in runs)
    by_name = {analyzer.name: analyzer.version for analyzer in registry.ANALYZERS}
    assert all(by_name[run["name"]] == run["version"] for run in runs)


def test_a_failing_analyzer_is_labelled_with_its_name_and_its_outcome_is_error(analyze, monkeypatch):
    def explode(context):
        raise OSError("disk says no")

    broken = Analyzer("exploder", "7", explode)
    monkeypatch.setattr(registry, "ANALYZERS", (*registry.ANALYZERS, broken))
    entry = analyze(b"anything at all", "a.txt")[0]
    assert {"analyzer": "exploder", "error": "OSError: disk says no"} in entry["errors"]
    assert entry["info"]["analyzers"][-1]["outcome"] == "error"


def test_an_analyzer_catching_every_exception_cannot_swallow_the_time_limit(engine_settings, spool_dir):
    def greedy(context):
        try:
            raise AnalysisTimeout("time is up")
        except Exception:  # what careless analyzer and library code does
            return {}

    path = spool_dir / "1"
    path.write_bytes(b"data")
    with pytest.raises(AnalysisTimeout):
        analyze_file(Submission(path, "a.bin", settings=engine_settings), (Analyzer("greedy", "1", greedy),))


def test_a_per_analyzer_time_limit_stops_that_analyzer_only_and_is_reported(analyze, monkeypatch):
    def endless(context):
        def blocks():
            while True:
                time.sleep(0.01)
                yield b"\1" * 64

        context.extract("endless.bin", blocks())
        return {}

    slow = Analyzer("endless", "1", endless, time_limit=0.2, extracts=True)
    monkeypatch.setattr(registry, "ANALYZERS", (slow, *registry.ANALYZERS))
    entry = analyze(EICAR, "eicar.com")[0]
    assert [limit["limit"] for limit in entry["metadata"]["archive"]["limits_hit"]] == ["time"]
    assert entry["info"]["analyzers"][0]["outcome"] == "limit"
    # The analyzers after it had the whole file's time and still ran.
    assert entry["classification"]["classification"] == MALICIOUS


def test_heuristics_table_rows_are_well_formed():
    ids = [row.id for row in heuristics.TABLE]
    assert len(ids) == len(set(ids))
    for row in heuristics.TABLE:
        assert 0 <= row.priority <= 10 and 0 <= row.factor <= 5
        assert row.description and row.category
        if row.classification is not None:
            assert row.classification in CLASSIFICATION_CODES and row.result, row.id


def test_every_heuristic_an_analyzer_names_is_in_the_table():
    source_dir = Path(registry.__file__).parent
    named = set()
    for path in source_dir.rglob("*.py"):
        named |= set(re.findall(r'hit\(\s*"([a-z0-9:_\-]+)"', path.read_text()))
    assert named, "no analyzer names a heuristic"
    assert named - set(heuristics.HEURISTICS) == set()


def test_a_heuristic_hit_becomes_an_indicator_a_verdict_and_tags():
    resolved = heuristics.resolve([{"id": "pe:injection", "reasons": ["CreateRemoteThread"]}])
    assert resolved["indicators"][0]["id"] == "pe:injection"
    assert resolved["indicators"][0]["reasons"] == ["CreateRemoteThread"]
    assert resolved["scan_results"][0]["result"] == "Win32.Suspicious.Injector"
    assert resolved["scan_results"][0]["name"] == heuristics.ENGINE
    indicator_only = heuristics.resolve([{"id": "pe:signed", "reasons": []}])
    assert indicator_only["scan_results"] == [] and indicator_only["tags"] == ["signed"]


def test_analysis_code_does_not_import_celery():
    code = (
        "import sys, worker.analysis.engine, worker.analysis.registry\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('celery', 'billiard'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(registry.__file__).parents[2])
