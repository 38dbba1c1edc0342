"""Where code lives: each service loads only what it uses, no import cycles, no import-time state."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "worker", "hub")


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(path: Path) -> set[str]:
    """Modules of our packages imported at module level (not inside functions) by `path`."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    return {
        name: {dep for dep in first_party_imports(path) if dep in modules} for name, path in modules.items()
    }


def test_the_hub_loads_neither_redis_nor_celery_nor_worker_code():
    for statement in ("import hub.settings", "import hub.api"):
        loaded = loaded_after(statement)
        assert not {"redis", "celery"} & loaded, statement
        assert not any(name.split(".")[0] == "worker" for name in loaded), statement


def test_the_worker_api_does_not_load_the_analysis_engine_or_the_celery_worker():
    loaded = loaded_after("import worker.api")
    assert "worker.analysis.engine" not in loaded
    assert "worker.celery_worker" not in loaded
    assert "worker.tasks" not in loaded


def test_the_outputs_worker_does_not_load_the_analysis_engine():
    """It delivers reports; importing the engine would cost each outputs worker seconds of
    CPU at start and memory for nothing."""
    loaded = loaded_after("import worker.celery_worker, worker.tasks, worker.outputs, worker.result_cache")
    assert not {"worker.analysis.engine", "worker.analysis.registry", "yara"} & loaded


def test_importing_the_celery_worker_builds_no_app_and_reads_no_settings():
    code = (
        "import gc, os\n"
        "os.environ['SCANHUB_UNPACK_MAX_DEPTH'] = 'not a number'\n"  # reading settings would fail
        "import worker.celery_worker, worker.tasks\n"
        "from celery import Celery\n"
        "print(sorted({item.main for item in gc.get_objects() if isinstance(item, Celery)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # Celery makes its own fallback app ("default") on import; ours is named "scanhub".
    assert "scanhub" not in result.stdout


def test_only_the_entry_point_imports_the_worker_app_factory():
    importers = {name for name, deps in import_graph().items() if "worker.api" in deps}
    assert importers == {"worker.__main__"}


def test_no_import_cycles_among_our_modules():
    graph = import_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_hubs_own_modules_import_nothing_from_the_worker():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith(("hub", "common")):
            assert not any(dep.startswith("worker") for dep in deps), name


# Built from parts so that this file does not contain what it looks for.
OUTSIDE_CITATIONS = ("design " + "\u00a7", "../" + "shared/")


def test_no_document_outside_the_repository_is_cited():
    for path in ROOT.rglob("*"):
        if path.suffix not in (".py", ".md") or ".venv" in path.parts or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for citation in OUTSIDE_CITATIONS:
            assert citation not in text, path


def test_the_benchmarks_and_sample_builders_do_not_import_the_tests():
    for package in ("bench", "samples"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert node.module.split(".")[0] != "tests", path
                if isinstance(node, ast.Import):
                    assert all(alias.name.split(".")[0] != "tests" for alias in node.names), path
