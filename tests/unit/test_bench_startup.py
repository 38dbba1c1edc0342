"""The start-up benchmark times fresh processes with and without bytecode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import startup


def test_a_process_is_timed_from_source_and_with_bytecode_written_to_its_own_prefix(tmp_path):
    # A module of this test's own: its bytecode must go to the bench's prefix, not beside it.
    (tmp_path / "probe_module.py").write_text("VALUE = sum(range(1000))\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import probe_module"
    figures = startup.measure(code, runs=1)
    assert figures["from_source_s"] > 0 and figures["bytecode_s"] > 0
    assert not (tmp_path / "__pycache__").exists()


def test_only_the_standard_librarys_bytecode_is_kept_for_the_from_source_runs(tmp_path):
    full, prefix = tmp_path / "full", tmp_path / "stdlib"
    startup.run_once("import json, yaml", full, write=True)  # a module of the stdlib and one installed
    assert [path for path in full.rglob("*.pyc") if "yaml" in path.parts]
    prefix.mkdir()
    startup.standard_library_only(full, prefix)
    kept = list(prefix.rglob("*.pyc"))
    assert [path for path in kept if path.parts[-2] == "json"]  # the mirror has no __pycache__ level
    assert not [path for path in kept if "yaml" in path.parts or "site-packages" in path.parts]


@pytest.mark.parametrize("name", list(startup.SNIPPETS))
def test_each_measured_snippet_runs(name):
    subprocess.run([sys.executable, "-c", startup.SNIPPETS[name]], cwd=startup.ROOT, check=True, timeout=120)
