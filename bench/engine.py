"""Engine benchmark: files/s and MB/s of the analysis engine alone, one process per core.

Runs the seeded benchmark corpus (`bench/corpus.py`) through
`worker.analysis.engine.analyze_file` twice: with the default ruleset, and with a large
ruleset next to it: a few thousand generated community-style rules, or `--rules-dir` of your
own. Rules are compiled before the clock starts, as a Celery process does once. Then, for
the large ruleset, it measures compile time, a bare `yara.match` per file, the whole engine
per file on the same files, and their ratio (`measure_yara`). `make bench` uses `measure`
for the engine limit and `measure_yara` for its YARA figures.

    python -m bench.engine [--files 300] [--rules 3000 | --rules-dir DIR] [--processes N]
                           [--seed 7] [--tiny]
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

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MODULE_IMPORTS = 'import "pe"\nimport "math"\nimport "hash"\n\n'


def random_word(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(length))


def random_hex(rng: random.Random, count: int) -> str:
    return " ".join(f"{rng.randrange(256):02X}" for _ in range(count))


def extra_strings(rng: random.Random, count: int) -> str:
    return "".join(
        f'        $x{n} = "{random_word(rng, rng.randrange(8, 24))}" ascii\n' for n in range(count)
    )


def rule_body(number: int, rng: random.Random) -> tuple[str, str]:
    """(strings, condition) of one rule, in one of the shapes community sets are made of."""
    word, other = random_word(rng, 12), random_word(rng, 10)
    shape = number % 8
    if shape == 0:  # text and hex with jumps and wildcards, as yarGen writes them
        strings = (
            f'        $s1 = "{word}" ascii wide nocase\n'
            f"        $h1 = {{ {random_hex(rng, 4)} [2-8] {random_hex(rng, 2)} ?? {random_hex(rng, 2)} }}\n"
            + extra_strings(rng, 4)
        )
        return strings, "any of them"
    if shape == 1:  # a PE rule on imports and sections
        strings = f'        $s1 = "{word}.dll" ascii\n        $s2 = "{other}" wide\n'
        condition = (
            "uint16(0) == 0x5A4D and filesize < 2MB and pe.number_of_sections > 2 and "
            'pe.imports("kernel32.dll", "VirtualAllocEx") and 1 of them'
        )
        return strings, condition
    if shape == 2:  # a regular expression with a literal anchor
        return f"        $r1 = /{word}[0-9a-f]{{8,16}}\\.(dll|exe|dat)/ nocase\n", "$r1"
    if shape == 3:  # entropy of a region next to a marker
        return (
            f"        $h1 = {{ {random_hex(rng, 6)} }}\n",
            "$h1 and math.entropy(@h1[1], 256) > 7.0",
        )
    if shape == 4:  # a known-file hash, guarded by the size as hash rules are
        size = rng.randrange(1000, 500_000)
        digest = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        return "", f'filesize == {size} and hash.md5(0, filesize) == "{digest}"'
    if shape == 5:  # LOKI / THOR externals
        return (
            f'        $s1 = "{word}" ascii\n',
            f'$s1 and (filetype == "EXE" or extension == "js") and not filepath contains "{other}"',
        )
    if shape == 6:  # a file name rule with a string
        return f'        $s1 = "{word}" fullword ascii\n', f"filename matches /{other}\\.(exe|scr)$/i or $s1"
    strings = (
        f'        $s1 = "{word}" ascii\n        $s2 = "{other}" ascii\n'
        f"        $h1 = {{ {random_hex(rng, 8)} }}\n" + extra_strings(rng, 6)
    )
    return strings, "3 of them"


def generated_ruleset(rule_count: int, seed: int, files: int = 10) -> dict[str, str]:
    """`rule_count` community-style rules with distinct atoms, in `files` files.

    The shapes mix text and hex (with jumps), regular expressions, the pe / math / hash
    modules and the LOKI / THOR external variables, like signature-base or YARA-Forge.
    """
    rng = random.Random(seed)
    sources: dict[str, list[str]] = {f"generated_{n:02d}.yar": [] for n in range(files)}
    for number in range(rule_count):
        strings, condition = rule_body(number, rng)
        rule = (
            f'rule generated_{number}\n{{\n    meta:\n        threat_name = "Generated.Test.R{number}"\n'
            f'        classification = "suspicious"\n        factor = 1\n'
            + (f"    strings:\n{strings}" if strings else "")
            + f"    condition:\n        {condition}\n}}\n"
        )
        sources[f"generated_{number % files:02d}.yar"].append(rule)
    return {name: MODULE_IMPORTS + "\n".join(rules) for name, rules in sources.items()}


_settings: Any = None


def worker_start(rules_dir: str, spool_root: str) -> None:
    """Per benchmark process: settings, and the rules compiled before any file is timed."""
    global _settings
    from worker.analysis import ruleset
    from worker.settings import WorkerSettings

    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=spool_root))
    _settings = WorkerSettings(
        spool_dir=spool, yara_rules_dir=Path(rules_dir), yara_check_interval_seconds=3600
    )
    ruleset.current_ruleset(Path(rules_dir), 3600)


def analyze_path(path: str) -> int:
    from worker.analysis.engine import Submission, analyze_file

    report = analyze_file(Submission(Path(path), Path(path).name, settings=_settings))
    return len(report)


def analyzer_times(path: str) -> tuple[int, dict[str, float]]:
    """Report entries of one file through the engine, and the milliseconds each analyzer
    spent on the file and its unpacked children."""
    from worker.analysis.engine import Submission, analyze_file

    report = analyze_file(Submission(Path(path), Path(path).name, settings=_settings))
    spent: dict[str, float] = {}
    for entry in report:
        for analyzer in entry["info"]["analyzers"]:
            spent[analyzer["name"]] = spent.get(analyzer["name"], 0.0) + analyzer["duration_ms"]
    return len(report), spent


def yara_seconds_in(path: str) -> tuple[int, float]:
    """Report entries of one file through the engine, and the time its YARA analyzer took in them."""
    entries, spent = analyzer_times(path)
    return entries, spent.get("yara", 0.0) / 1000


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


def engine_cpu_per_file(paths: list[str], rules_dir: Path, workdir: Path) -> dict[str, Any]:
    """In this process: the engine's CPU per file (`time.process_time`) over `paths`, and
    the per-file time split by analyzer (their own timings), identification (libmagic and
    the type table on each file's head, timed apart) and the rest (hashing, entropy,
    walking, the report)."""
    from worker.analysis import content, identify

    worker_start(str(rules_dir), str(workdir))
    for path in paths[:3]:
        analyze_path(path)  # first touches off the clock
    by_analyzer: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for path in paths:
        for name, milliseconds in analyzer_times(path)[1].items():
            by_analyzer[name] = by_analyzer.get(name, 0.0) + milliseconds
    wall = (time.perf_counter() - started) * 1000 / len(paths)
    cpu = (time.process_time() - cpu_started) * 1000 / len(paths)
    split = {
        name: round(total / len(paths), 3)
        for name, total in sorted(by_analyzer.items(), key=lambda item: -item[1])
    }
    heads = []
    for path in paths:
        with open(path, "rb") as handle:
            heads.append(handle.read(content.HEAD_BYTES))
    started = time.perf_counter()
    for head in heads:
        identify.identify(head)
    split["identification (libmagic, type table)"] = round(
        (time.perf_counter() - started) * 1000 / len(paths), 3
    )
    split["hashing, entropy, walking, report"] = round(wall - sum(split.values()), 3)
    return {
        "files": len(paths),
        "cpu_ms_per_file": round(cpu, 3),
        "wall_ms_per_file": round(wall, 3),
        "split_ms": split,
    }


# The per-file targets: text and shell scripts of 4 KB and 100 KB, on one core.
PER_FILE_SIZES = {"4 KB": 4096, "100 KB": 100_000}


def per_file_by_size(rules_dir: Path, workdir: Path, files: int = 20, seed: int = 5) -> dict[str, Any]:
    """The engine's per-file time on text and scripts of each of `PER_FILE_SIZES`, split by analyzer."""
    from bench.corpus import script_file, text_file

    rng = random.Random(seed)
    figures = {}
    for label, size in PER_FILE_SIZES.items():
        directory = workdir / f"per-file-{size}"
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for number in range(files):
            for suffix, make in ((".txt", text_file), (".sh", script_file)):
                path = directory / f"{number:03d}{suffix}"
                path.write_bytes(make(rng, size))
                paths.append(str(path))
        figures[label] = engine_cpu_per_file(paths, rules_dir, workdir)
    return figures


def bare_externals(path: str) -> dict[str, str]:
    """The external variables a bare scan of `path` gets (computed before the clock starts)."""
    from worker.analysis import ruleset, yara_scan

    name = Path(path).name
    with open(path, "rb") as handle:
        head = handle.read(16)
    return {
        **dict.fromkeys(ruleset.EXTERNALS, ""),
        "filename": name,
        "filepath": name,
        "extension": Path(name).suffix[1:].lower(),
        "filetype": yara_scan.header_type(head),
    }


def measure_yara(paths: list[str], rules_dir: Path, workdir: Path) -> dict[str, Any]:
    """One process: compile time, then per file the bare YARA scan and the whole engine, same files.

    Each file is scanned by `yara.match` alone (externals set) and run through `analyze_file`
    (identification, hashes, strings, unpacking, YARA on every unpacked child, ...); their
    ratio is what the engine costs around a bare YARA scan.
    """
    from worker.analysis import ruleset

    compiled = ruleset.compile_ruleset(rules_dir)
    worker_start(str(rules_dir), str(workdir))
    externals = {path: bare_externals(path) for path in paths}

    def scan(path: str) -> int:
        return len(compiled.rules.match(path, externals=externals[path], timeout=60))

    for path in paths[:3]:  # first touches (page cache, lazy module state) off the clock
        scan(path)
        analyze_path(path)
    started = time.perf_counter()
    raw_matches = sum(scan(path) for path in paths)
    raw_seconds = time.perf_counter() - started
    started = time.perf_counter()
    runs = [yara_seconds_in(path) for path in paths]
    engine_seconds = time.perf_counter() - started
    entries = sum(count for count, _ in runs)
    yara_in_engine = sum(spent for _, spent in runs)
    left_out = {item.key: item.errors[0] for item in compiled.files if item.errors}
    return {
        "rule_files": len(compiled.files),
        "rules": compiled.rule_count,
        "files_left_out": len(left_out),
        "left_out": left_out,
        "compile_seconds": compiled.compile_seconds,
        "files": len(paths),
        "entries": entries,
        "raw_matches": raw_matches,
        "raw_ms_per_file": round(raw_seconds / len(paths) * 1000, 3),
        "engine_ms_per_file": round(engine_seconds / len(paths) * 1000, 3),
        "yara_in_engine_ms_per_file": round(yara_in_engine / len(paths) * 1000, 3),
        "engine_over_raw": round(engine_seconds / raw_seconds, 2) if raw_seconds else None,
    }


def yara_line(figures: dict[str, Any]) -> str:
    return (
        f"YARA ({figures['rules']} rules from {figures['rule_files']} files, "
        f"{figures['files_left_out']} left out): compile {figures['compile_seconds']} s; "
        f"per file: raw YARA {figures['raw_ms_per_file']} ms, "
        f"whole engine {figures['engine_ms_per_file']} ms "
        f"(YARA on the file and its children {figures['yara_in_engine_ms_per_file']} ms), "
        f"engine / raw YARA {figures['engine_over_raw']} ({figures['files']} files)"
    )


def write_corpus(samples: list[Sample], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in samples:
        path = directory / sample.name
        path.write_bytes(sample.content)
        paths.append(str(path))
    return paths


def write_generated_rules(directory: Path, rules: int, seed: int) -> Path:
    """The default ruleset plus `rules` generated community-style rules, in `directory`."""
    from worker.settings import DEFAULT_RULES_DIR

    shutil.copytree(DEFAULT_RULES_DIR, directory)
    for name, text in generated_ruleset(rules, seed).items():
        (directory / name).write_text(text)
    return directory


def run(files: int, rules: int, processes: int, seed: int, rules_dir: Path | None = None) -> dict[str, Any]:
    """Engine files/s with the default and a large ruleset (`rules_dir`, or `rules` generated rules),
    and the YARA figures (compile, raw scan, engine, ratio) of the large one."""
    from worker.analysis import ruleset
    from worker.settings import DEFAULT_RULES_DIR

    with tempfile.TemporaryDirectory(prefix="scanhub-bench-") as temp:
        workdir = Path(temp)
        paths = write_corpus(generate("mixed", files, seed), workdir / "corpus")
        large_dir = rules_dir or write_generated_rules(workdir / "rules-large", rules, seed)
        results: dict[str, Any] = {}
        for label, directory in (("default", DEFAULT_RULES_DIR), ("large", large_dir)):
            compiled = ruleset.compile_ruleset(directory)
            figures = measure(paths, directory, processes, workdir)
            figures.update({"rules": compiled.rule_count, "processes": processes})
            results[label] = figures
        results["yara"] = measure_yara(paths, large_dir, workdir)
        return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rules", type=int, default=3000, help="generated rules in the large ruleset")
    parser.add_argument(
        "--rules-dir", type=Path, default=None, help="a rule directory of your own as the large ruleset"
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="a few files and rules: checks the bench runs")
    options = parser.parse_args(argv)
    if options.tiny:
        options.files, options.rules, options.processes = 14, 40, 1
    results = run(options.files, options.rules, options.processes, options.seed, options.rules_dir)
    for label in ("default", "large"):
        figures = results[label]
        print(
            f"engine, {label} ruleset ({figures['rules']} rules): "
            f"{figures['files_per_second']} files/s, {figures['mb_per_second']} MB/s "
            f"({figures['files']} files -> {figures['entries']} report entries, "
            f"{figures['bytes'] / 1e6:.1f} MB, {figures['processes']} processes, {figures['seconds']} s)"
        )
    print(yara_line(results["yara"]))
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
