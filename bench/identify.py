"""Identification benchmark: libmagic with our table beside Google's Magika, for speed and accuracy.

Two corpora with known answers: the seeded benchmark corpus (`bench/corpus.py`, the truth from
how each file was made) and the identification samples (`samples/*.py`,
one per row of the table). For each file it times our identification (`identify.identify` on
the head: libmagic's MIME type and description and the table; then the `refine` analyzer) and
Magika's (`identify_bytes`), maps Magika's label onto our type/subtype names, and counts who is
right where they disagree. It also lists the samples whose libmagic description differs
between the system libmagic and the copy the `pylibmagic` wheel carries.

    python -m bench.identify [--files 300] [--seed 7] [--show 15] [--directory /usr/share ...]

The identification samples were built to match our table, so they measure Magika more than
us; `--directory` adds real files (no truth: agreement, and the disagreements to judge).

Magika is optional (`pip install magika`); without it only our figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import samples
from bench.corpus import generate

Kind = tuple[str, str | None]  # (file_type, file_subtype); None: any subtype of the type
UNKNOWN_TRUTH: Kind = ("", None)  # files of a directory: no truth, agreement only

# Magika's labels in our names; a None subtype when Magika's label is the family only.
MAGIKA_KINDS: dict[str, Kind] = {
    "3gp": ("Media", "3GP"),
    "apk": ("Archive", "APK"),
    "applebplist": ("Apple", "Plist"),
    "awk": ("Text", "AWK"),
    "batch": ("Text", "Batch"),
    "bmp": ("Image", "BMP"),
    "bzip": ("Archive", "BZIP2"),
    "c": ("Text", "C"),
    "cab": ("Archive", "CAB"),
    "chm": ("Archive", "CHM"),
    "coff": ("COFF", "Object"),
    "cpp": ("Text", "C++"),
    "crt": ("Certificate", None),
    "crx": ("Package", "CRX"),
    "csv": ("Text", "CSV"),
    "deb": ("Archive", "DEB"),
    "dex": ("Bytecode", "DEX"),
    "dicom": ("Image", "DICOM"),
    "diff": ("Text", "Diff"),
    "doc": ("Document", "Word"),
    "docx": ("Document", "Word"),
    "dsstore": ("Apple", "DSStore"),
    "elf": ("ELF", None),
    "emf": ("Image", "EMF"),
    "eml": ("Mail", "EML"),
    "empty": ("None", "Empty"),
    "flac": ("Media", "FLAC"),
    "flv": ("Media", "FLV"),
    "gif": ("Image", "GIF"),
    "gzip": ("Archive", "GZIP"),
    "hlp": ("Windows", "HLP"),
    "html": ("Text", "HTML"),
    "icns": ("Image", "ICNS"),
    "ico": ("Image", "ICO"),
    "ics": ("Text", "Calendar"),
    "ini": ("Text", "INI"),
    "internetshortcut": ("Shortcut", "URL"),
    "iso": ("Archive", "ISO"),
    "jar": ("Archive", "JAR"),
    "java": ("Text", "Java"),
    "javabytecode": ("Bytecode", "JavaClass"),
    "javascript": ("Text", "JavaScript"),
    "jp2": ("Image", "JPEG2000"),
    "jpeg": ("Image", "JPEG"),
    "json": ("Text", "JSON"),
    "jsonl": ("Text", "JSON"),
    "latex": ("Text", "TeX"),
    "lnk": ("Shortcut", "LNK"),
    "css": ("Text", "CSS"),
    "rst": ("Text", "RST"),
    "toml": ("Text", "TOML"),
    "lua": ("Text", "Lua"),
    "macho": ("MachO", None),
    "makefile": ("Text", "Makefile"),
    "markdown": ("Text", "Markdown"),
    "midi": ("Media", "MIDI"),
    "mkv": ("Media", "MKV"),
    "mp3": ("Media", "MP3"),
    "mp4": ("Media", "MP4"),
    "msi": ("Installer", "MSI"),
    "ogg": ("Media", "OGG"),
    "one": ("Document", "OneNote"),
    "otf": ("Font", "OpenType"),
    "outlook": ("Mail", None),
    "pcap": ("Network", None),
    "pdb": ("Windows", "PDB"),
    "pdf": ("Document", "PDF"),
    "pebin": ("PE", None),
    "pem": ("Certificate", None),
    "perl": ("Text", "Perl"),
    "php": ("Text", "PHP"),
    "pickle": ("Data", "Pickle"),
    "png": ("Image", "PNG"),
    "postscript": ("Document", "PostScript"),
    "powershell": ("Text", "PowerShell"),
    "ppt": ("Document", "PowerPoint"),
    "pptx": ("Document", "PowerPoint"),
    "psd": ("Image", "PSD"),
    "python": ("Text", "Python"),
    "pythonbytecode": ("Bytecode", "Python"),
    "qt": ("Media", "MOV"),
    "rar": ("Archive", "RAR"),
    "rpm": ("Archive", "RPM"),
    "rtf": ("Document", "RTF"),
    "ruby": ("Text", "Ruby"),
    "sevenzip": ("Archive", "7ZIP"),
    "shell": ("Text", "Shell"),
    "sql": ("Text", "SQL"),
    "sqlite": ("Database", "SQLite"),
    "squashfs": ("Disk", "SquashFS"),
    "svg": ("Image", "SVG"),
    "swf": ("Flash", None),
    "tar": ("Archive", "TAR"),
    "tcl": ("Text", "Tcl"),
    "tiff": ("Image", "TIFF"),
    "ttf": ("Font", "TrueType"),
    "txt": ("Text", "None"),
    "unknown": ("Binary", "None"),
    "vba": ("Text", "VBScript"),
    "wasm": ("Bytecode", "WebAssembly"),
    "wav": ("Media", "WAV"),
    "webm": ("Media", "WebM"),
    "webp": ("Image", "WebP"),
    "winregistry": ("Windows", "Registry"),
    "wmf": ("Image", "WMF"),
    "woff": ("Font", "WOFF"),
    "woff2": ("Font", "WOFF2"),
    "xls": ("Document", "Excel"),
    "xlsx": ("Document", "Excel"),
    "xml": ("Text", "XML"),
    "xz": ("Archive", "XZ"),
    "yaml": ("Text", "YAML"),
    "zip": ("Archive", "ZIP"),
}

# The benchmark corpus's truth, by how each file was made (its extension).
CORPUS_TRUTH: dict[str, Kind] = {
    "txt": ("Text", "None"),
    "sh": ("Text", "Shell"),
    "json": ("Text", "JSON"),
    "exe": ("PE", None),
    "pdf": ("Document", "PDF"),
    "docx": ("Document", "Word"),
    "zip": ("Archive", "ZIP"),
    "tar.gz": ("Archive", "GZIP"),
    "eicar.zip": ("Archive", "ZIP"),
    "doc": ("Document", None),
    "elf": ("ELF", None),
    "bin": ("Binary", "None"),
}


def agrees(found: tuple[str, str], truth: Kind) -> bool:
    return found[0] == truth[0] and (truth[1] is None or found[1] == truth[1])


def magika_kind(label: str) -> Kind:
    return MAGIKA_KINDS.get(label, ("?", label))


def corpus_files(count: int, seed: int) -> list[tuple[str, bytes, Kind]]:
    files = []
    for sample in generate("mixed", count, seed):
        suffix = sample.name.split(".", 1)[1]
        files.append((sample.name, sample.content, CORPUS_TRUTH[suffix]))
    return files


def directory_files(roots: list[str], count: int) -> list[tuple[str, bytes, Kind]]:
    """Up to `count` real files under `roots` (every n-th of the sorted list, at most 4 MiB each)."""
    paths = sorted(
        path for root in roots for path in Path(root).rglob("*") if path.is_file() and not path.is_symlink()
    )
    step = max(1, len(paths) // count)
    chosen = [path for path in paths[::step] if path.stat().st_size <= 4 * 1024 * 1024][:count]
    return [(str(path), path.read_bytes(), UNKNOWN_TRUTH) for path in chosen]


def identification_samples() -> list[tuple[str, bytes, Kind]]:
    return [
        (f"sample:{file_type}/{file_subtype}", build(), (file_type, file_subtype))
        for _, (file_type, file_subtype, build) in samples.identification_samples()
    ]


def ours(workdir: Path) -> Callable[[bytes], tuple[str, str]]:
    """Our identification as the engine runs it: `identify` on the head, then `refine`."""
    from worker.analysis import identify
    from worker.analysis.context import FileContext
    from worker.settings import WorkerSettings

    settings = WorkerSettings(spool_dir=workdir)
    path = workdir / "sample"

    def run(data: bytes, file_name: str = "sample") -> tuple[str, str]:
        path.write_bytes(data)
        identity = identify.identify(data[: identify.MAGIC_BYTES])
        context = FileContext(
            path,
            file_name,
            file_name,
            0,
            len(data),
            data[: 64 * 1024],
            dict(identity),
            settings,
            time.monotonic() + 30,
        )
        identity.update(identify.refine(context).get("identity", {}))
        return identity["file_type"], identity["file_subtype"]

    return run


def timed(run: Callable[..., Any], *arguments: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run(*arguments)
    return result, (time.perf_counter() - started) * 1000


def milliseconds(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    median, mean = statistics.median(ordered), statistics.fmean(ordered)
    return f"median {median:.3f} ms, mean {mean:.3f} ms, p95 {p95:.3f} ms"


def compare(label: str, files: list[tuple[str, bytes, Kind]], workdir: Path, show: int) -> dict[str, Any]:
    run_ours = ours(workdir)
    for _, data, _ in files[:5]:  # warm caches and lazily loaded libraries before the clock
        run_ours(data)
    magika = load_magika()
    counts: dict[str, Any] = {
        "files": len(files),
        "ours_right": 0,
        "magika_right": 0,
        "agree": 0,
        "only_ours": 0,
        "only_magika": 0,
        "both_wrong": 0,
    }
    our_times: list[float] = []
    magika_times: list[float] = []
    disagreements = []
    for name, data, truth in files:
        # The engine knows the submitted name; the refine step reads its suffix on generic text.
        file_name = "sample" if name.startswith("sample:") else Path(name).name
        # The engine knows the submitted name: the refine step reads its suffix on generic text.
        found, elapsed = timed(run_ours, data, file_name)
        our_times.append(elapsed)
        ours_right = truth == UNKNOWN_TRUTH or agrees(found, truth)
        counts["ours_right"] += ours_right
        if magika is None:
            continue
        result, elapsed = timed(magika.identify_bytes, data)
        magika_times.append(elapsed)
        label_ = result.output.label
        kind = magika_kind(label_)
        magika_right = truth == UNKNOWN_TRUTH or (
            kind[0] == truth[0] and (kind[1] is None or truth[1] is None or kind[1] == truth[1])
        )
        counts["magika_right"] += magika_right
        same = found[0] == kind[0] and (kind[1] is None or kind[1] == found[1])
        counts["agree"] += same
        if ours_right and not magika_right:
            counts["only_ours"] += 1
        elif magika_right and not ours_right:
            counts["only_magika"] += 1
        elif not ours_right and not magika_right:
            counts["both_wrong"] += 1
        if not same:
            disagreements.append(f"{name}: ours {found[0]}/{found[1]}, magika {label_} ({result.score:.2f})")
    print(f"\n{label}: {len(files)} files, {sum(len(d) for _, d, _ in files) / 1e6:.1f} MB")
    print(f"  ours (libmagic + table + refine): {milliseconds(our_times)}; right {counts['ours_right']}")
    if magika is not None:
        print(f"  magika: {milliseconds(magika_times)}; right {counts['magika_right']}")
        print(
            f"  agree {counts['agree']}; disagree {len(disagreements)}: "
            f"only ours right {counts['only_ours']}, "
            f"only magika right {counts['only_magika']}, both wrong {counts['both_wrong']}"
        )
        for line in disagreements[:show]:
            print(f"    {line}")
        if len(disagreements) > show:
            print(f"    ... {len(disagreements) - show} more")
    counts["ours_ms"] = our_times
    counts["magika_ms"] = magika_times
    return counts


_magika: Any = None


def load_magika() -> Any:
    """Magika's model (loaded once, timed), or None when the package is not installed."""
    global _magika
    if _magika is None:
        try:
            from magika import Magika
        except ImportError:
            print("magika is not installed (pip install magika): only our figures")
            return None
        started = time.perf_counter()
        _magika = Magika()
        print(
            f"magika {_magika.get_module_version()} ({_magika.get_model_name()}): "
            f"model loaded in {(time.perf_counter() - started) * 1000:.0f} ms"
        )
    return _magika


DESCRIBE_WITH = """
import ctypes, json, os, sys
library = ctypes.CDLL(sys.argv[1])
library.magic_open.restype = ctypes.c_void_p
library.magic_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
library.magic_buffer.restype = ctypes.c_char_p
library.magic_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
library.magic_version.restype = ctypes.c_int
cookie = library.magic_open(0)
library.magic_load(cookie, os.path.join(os.path.dirname(sys.argv[1]), "magic.mgc").encode())
buffers = json.load(sys.stdin)
answers = [
    library.magic_buffer(cookie, bytes.fromhex(b), len(b) // 2).decode("utf-8", "replace") for b in buffers
]
json.dump({"version": library.magic_version(), "answers": answers}, sys.stdout)
"""


def libmagic_versions(files: list[tuple[str, bytes, Kind]]) -> None:
    """Samples whose description differs between the system libmagic and pylibmagic's copy."""
    import importlib.util

    import magic

    # Not imported: importing pylibmagic points this process's libmagic at its older database.
    spec = importlib.util.find_spec("pylibmagic")
    if spec is None or not spec.submodule_search_locations:
        return
    bundled = Path(next(iter(spec.submodule_search_locations))) / "libmagic.so.1"
    if not bundled.exists():
        return
    heads = [data[:16384] for _, data, _ in files if data]
    names = [name for name, data, _ in files if data]
    answer = subprocess.run(
        [sys.executable, "-c", DESCRIBE_WITH, str(bundled)],
        check=True,
        capture_output=True,
        input=json.dumps([head.hex() for head in heads]).encode(),
    )
    other = json.loads(answer.stdout)
    system = magic.Magic()
    differing = [
        (name, mine, theirs)
        for name, head, theirs in zip(names, heads, other["answers"], strict=True)
        if (mine := system.from_buffer(head)) != theirs
    ]
    print(
        f"\nlibmagic {magic.version()} (system) and {other['version']} (pylibmagic) describe "
        f"{len(differing)} of {len(heads)} samples differently:"
    )
    for name, mine, theirs in differing:
        print(f"    {name}: {mine[:70]!r} / {theirs[:70]!r}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=15, help="disagreements listed per corpus")
    parser.add_argument(
        "--directory", action="append", default=[], help="also real files under this directory"
    )
    options = parser.parse_args(argv)
    samples = identification_samples()
    with tempfile.TemporaryDirectory(prefix="scanhub-identify-") as temp:
        results = {
            "corpus": compare(
                "bench corpus (mixed)", corpus_files(options.files, options.seed), Path(temp), options.show
            ),
            "samples": compare("identification samples", samples, Path(temp), options.show),
        }
        if options.directory:
            files = directory_files(options.directory, options.files)
            results["directory"] = compare(
                "real files (no truth: agreement only)", files, Path(temp), options.show
            )
    libmagic_versions(samples)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
