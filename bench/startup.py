"""`python -m bench.startup`: what a new process costs to start, with and without bytecode.

Each Worker API, Celery worker and pool process is a new Python process that imports what
it needs; so is each test's. Run here in fresh processes, three ways:

- `from source`: the standard library's bytecode only, and none written (a private
  `PYTHONPYCACHEPREFIX` holding just that, with `PYTHONDONTWRITEBYTECODE=1`), as every process
  ran when packages were installed without bytecode in an environment that set that variable;
- `bytecode`: the same after one process wrote the bytecode of everything it imports;

and prints the median wall time of each, and their ratio. The installed packages and the
repository's own `__pycache__` directories are neither read nor touched.

    python -m bench.startup [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What each kind of process imports (and, for a pool process, does) before its first job.
SNIPPETS = {
    # What the interpreter and the environment's start-up files load: a part of every row.
    "interpreter alone": "pass",
    "Worker API": "import worker.__main__",
    "Celery worker": "import worker.celery_worker",
    "engine: import and analyze one zip": """
import hashlib, tempfile
from pathlib import Path
from samples.basic import EICAR, zip_bytes
from worker.analysis.engine import Submission, analyze_file
from worker.settings import WorkerSettings
data = zip_bytes({"eicar.com": EICAR, "notes.txt": b"notes"})
digests = {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
with tempfile.TemporaryDirectory() as temp:
    spool = Path(temp)
    (spool / "1").write_bytes(data)
    analyze_file(Submission(spool / "1", "a.zip", digests, {}, WorkerSettings(spool_dir=spool)))
""",
}


def run_once(code: str, prefix: Path, write: bool) -> float:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCANHUB_")}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def standard_library_only(full: Path, prefix: Path) -> None:
    """Copy into `prefix` the standard library's part of the bytecode tree `full`."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    mirror = full / stdlib.relative_to(stdlib.anchor)
    if mirror.is_dir():
        shutil.copytree(mirror, prefix / stdlib.relative_to(stdlib.anchor),
                        ignore=shutil.ignore_patterns("site-packages"))  # fmt: skip


def measure(code: str, runs: int) -> dict[str, float]:
    """Median seconds of `runs` fresh processes running `code`, from source and with bytecode."""
    with tempfile.TemporaryDirectory(prefix="scanhub-pycache-") as temp:
        full, prefix = Path(temp) / "full", Path(temp) / "stdlib"
        run_once(code, full, write=True)  # the bytecode of everything it imports
        prefix.mkdir()
        standard_library_only(full, prefix)
        source = statistics.median(run_once(code, prefix, write=False) for _ in range(runs))
        bytecode = statistics.median(run_once(code, full, write=False) for _ in range(runs))
    return {
        "from_source_s": round(source, 3),
        "bytecode_s": round(bytecode, 3),
        "ratio": round(source / bytecode, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="processes per figure (the median is shown)")
    options = parser.parse_args(argv)
    results = {}
    print(f"{'process':<36} {'from source':>12} {'bytecode':>10} {'ratio':>7}")
    for name, code in SNIPPETS.items():
        figures = results[name] = measure(code, options.runs)
        source, bytecode, ratio = figures["from_source_s"], figures["bytecode_s"], figures["ratio"]
        print(f"{name:<36} {source:>10} s {bytecode:>8} s {ratio:>6}x", flush=True)
    return results


if __name__ == "__main__":
    main()
