"""The start-up benchmark times fresh processes with and without bytecode."""

from __future__ import annotations

import pytest

from bench import startup


def test_a_process_is_timed_from_source_and_with_bytecode_written_to_its_own_prefix(tmp_path):
    # A module of this test's own: its bytecode must go to the bench's prefix, not beside it.
    (tmp_path / "probe_module.py").write_text("VALUE = sum(range(1000))\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import probe_module"
    figures = startup.measure(code, runs=1)
    assert figures["from_source_s"] > 0 and figures["bytecode_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["from_source_s"] / figures["bytecode_s"], abs=0.1)
    assert not (tmp_path / "__pycache__").exists()
