"""`python -m bench.startup`: what a new process costs to start, with and without bytecode.

Each Worker API, Celery worker and pool process is a new Python process that imports what
it needs; so is each test's. Run here in fresh processes, three ways:

- `from source`: no bytecode to read and none written (an empty `PYTHONPYCACHEPREFIX` with
  `PYTHONDONTWRITEBYTECODE=1`), as every process ran when packages were installed without
  bytecode in an environment that set that variable (here the standard library is compiled
  too, so this is the most it can cost);
- `bytecode`: the same after one process wrote the bytecode (into that prefix);

and prints the median wall time of each, and their ratio. The installed packages and the
repository's own `__pycache__` directories are not touched.

    python -m bench.startup [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
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
spool = Path(tempfile.mkdtemp())
(spool / "1").write_bytes(data)
digests = {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
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


def measure(code: str, runs: int) -> dict[str, float]:
    """Median seconds of `runs` fresh processes running `code`, from source and with bytecode."""
    with tempfile.TemporaryDirectory(prefix="scanhub-pycache-") as temp:
        prefix = Path(temp)
        source = statistics.median(run_once(code, prefix, write=False) for _ in range(runs))
        run_once(code, prefix, write=True)  # writes the bytecode into the prefix
        bytecode = statistics.median(run_once(code, prefix, write=False) for _ in range(runs))
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
