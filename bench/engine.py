"""Engine benchmark: files/s and MB/s of the analysis engine alone, one process per core.

Runs the seeded benchmark corpus (`bench/corpus.py`) through
`worker.analysis.engine.analyze_file` twice: with the default ruleset, and with a large
generated ruleset (a few thousand rules) next to it. Rules are compiled before the clock
starts, as a Celery process does once. `make bench` uses `measure` for the engine limit.

    python -m bench.engine [--files 300] [--rules 3000] [--processes N] [--seed 7] [--tiny]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import Sample, generate


def generated_ruleset(rule_count: int, seed: int, files: int = 10) -> dict[str, str]:
    """`rule_count` hunting-style rules with distinct string and hex atoms, in `files` files."""
    rng = random.Random(seed)
    sources: dict[str, list[str]] = {f"generated_{n:02d}.yar": [] for n in range(files)}
    for number in range(rule_count):
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
        hex_bytes = " ".join(f"{rng.randrange(256):02X}" for _ in range(8))
        rule = (
            f'rule generated_{number}\n{{\n    meta:\n        threat_name = "Generated.Test.R{number}"\n'
            f'        classification = "suspicious"\n        factor = 1\n'
            f'    strings:\n        $text = "{text}" nocase\n        $hex = {{ {hex_bytes} }}\n'
            f"    condition:\n        any of them\n}}\n"
        )
        sources[f"generated_{number % files:02d}.yar"].append(rule)
    return {name: "\n".join(rules) for name, rules in sources.items()}


_settings: Any = None


def worker_start(rules_dir: str, spool_root: str) -> None:
    """Per benchmark process: settings, and the rules compiled before any file is timed."""
    global _settings
    from common.settings import WorkerSettings
    from worker.analysis import ruleset

    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=spool_root))
    _settings = WorkerSettings(
        spool_dir=spool, yara_rules_dir=Path(rules_dir), yara_check_interval_seconds=3600
    )
    ruleset.current_ruleset(Path(rules_dir), 3600)


def analyze_path(path: str) -> int:
    from worker.analysis.engine import Submission, analyze_file

    report = analyze_file(Submission(Path(path), Path(path).name, settings=_settings))
    return len(report)


def warm_up(_: int) -> bool:
    time.sleep(0.2)  # hold this process so every process runs one initializer before timing
    return True


def measure(paths: list[str], rules_dir: Path, processes: int, workdir: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    total_bytes = sum(os.path.getsize(path) for path in paths)
    with context.Pool(processes, initializer=worker_start, initargs=(str(rules_dir), str(workdir))) as pool:
        pool.map(warm_up, range(processes), chunksize=1)
        started = time.perf_counter()
        entries = sum(pool.imap_unordered(analyze_path, paths, chunksize=1))
        elapsed = time.perf_counter() - started
    return {
        "files": len(paths),
        "entries": entries,
        "bytes": total_bytes,
        "seconds": round(elapsed, 3),
        "files_per_second": round(len(paths) / elapsed, 1),
        "mb_per_second": round(total_bytes / elapsed / 1e6, 2),
    }


def write_corpus(samples: list[Sample], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in samples:
        path = directory / sample.name
        path.write_bytes(sample.content)
        paths.append(str(path))
    return paths


def run(files: int, rules: int, processes: int, seed: int) -> dict[str, Any]:
    from common.settings import DEFAULT_RULES_DIR
    from worker.analysis import ruleset

    with tempfile.TemporaryDirectory(prefix="scanhub-bench-") as temp:
        workdir = Path(temp)
        paths = write_corpus(generate("mixed", files, seed), workdir / "corpus")
        large_dir = workdir / "rules-large"
        shutil.copytree(DEFAULT_RULES_DIR, large_dir)
        for name, text in generated_ruleset(rules, seed).items():
            (large_dir / name).write_text(text)
        results = {}
        for label, rules_dir in (("default", DEFAULT_RULES_DIR), ("large", large_dir)):
            compiled = ruleset.compile_ruleset(rules_dir)
            figures = measure(paths, rules_dir, processes, workdir)
            figures.update({"rules": compiled.rule_count, "processes": processes})
            results[label] = figures
        return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rules", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="a few files and rules: checks the bench runs")
    options = parser.parse_args(argv)
    if options.tiny:
        options.files, options.rules, options.processes = 14, 40, 1
    results = run(options.files, options.rules, options.processes, options.seed)
    for label, figures in results.items():
        print(
            f"engine, {label} ruleset ({figures['rules']} rules): "
            f"{figures['files_per_second']} files/s, {figures['mb_per_second']} MB/s "
            f"({figures['files']} files -> {figures['entries']} report entries, "
            f"{figures['bytes'] / 1e6:.1f} MB, {figures['processes']} processes, {figures['seconds']} s)"
        )
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
