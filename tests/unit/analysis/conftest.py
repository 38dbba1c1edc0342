"""Analysis-layer fixtures: the real engine over files built by the tests, in a private spool."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from worker.analysis.engine import Submission, analyze_file
from worker.settings import DEFAULT_RULES_DIR, WorkerSettings


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the default ruleset that a test may edit."""
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def engine_settings(spool_dir: Path, rules_dir: Path) -> WorkerSettings:
    """A node's settings, with a per-file time limit of 5 min rather than 30 s: the tests of
    other limits (bombs, 100,000 entries, under memory tracing) take up to 10 s here and must
    not race the clock on a loaded machine. The time limit has tests of its own."""
    return WorkerSettings(
        spool_dir=spool_dir,
        yara_rules_dir=rules_dir,
        yara_check_interval_seconds=0,
        analysis_file_time_limit_seconds=300,
    )


@pytest.fixture
def analyze(engine_settings: WorkerSettings, spool_dir: Path) -> Callable[..., list[dict[str, Any]]]:
    """Spool `data` as task 1 and run the engine over it; the spool must hold only it afterwards."""

    def run(data: bytes, file_name: str = "sample.bin", user_data=None, **overrides: Any):
        settings = engine_settings.model_copy(update=overrides) if overrides else engine_settings
        path = spool_dir / "1"
        path.write_bytes(data)
        digests = {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
        report = analyze_file(Submission(path, file_name, digests, user_data or {}, settings))
        assert sorted(p.name for p in spool_dir.iterdir()) == ["1"], "unpacked children left behind"
        return report

    return run


def hashes(entry: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in entry["info"]["file"]["hashes"]}


def by_path(report: list[dict[str, Any]], file_path: str) -> dict[str, Any]:
    return next(entry for entry in report if entry["info"]["file"]["file_path"] == file_path)
