"""A deterministic (seeded) benchmark corpus: small, medium, large and a realistic mix.

Files are generated in memory from a seed, never downloaded, and look like what a mail or
upload gateway sees: text and scripts, JSON, PE-like and PDF-like binaries, Office-like
zip containers, and zips holding a few files.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    name: str
    content: bytes


def _words(rng: random.Random, count: int) -> str:
    vocabulary = ["invoice", "payment", "account", "update", "http://example.com/a", "please", "open",
                  "attached", "document", "powershell", "download", "user@example.org", "10.0.0.1",
                  "report", "the", "and", "for", "with", "urgent", "delivery"]  # fmt: skip
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def text_file(rng: random.Random, size: int) -> bytes:
    return _words(rng, size // 6).encode()[:size]


def script_file(rng: random.Random, size: int) -> bytes:
    lines = ["#!/bin/sh"]
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"echo {_words(rng, 6)}")
    return "\n".join(lines).encode()[:size]


def json_file(rng: random.Random, size: int) -> bytes:
    records: list[dict] = []
    while len(json.dumps(records)) < size:
        records.append({"id": rng.randrange(10**9), "text": _words(rng, 8), "score": rng.random()})
    return json.dumps(records).encode()


def pe_like(rng: random.Random, size: int) -> bytes:
    header = bytearray(b"MZ" + b"\x90\x00" * 29 + (0x80).to_bytes(4, "little"))
    header += b"\x00" * (0x80 - len(header)) + b"PE\x00\x00" + b"\x4c\x01\x03\x00"
    body = bytes(rng.getrandbits(8) for _ in range(min(size, 4096)))
    filler = (body + bytes(range(256))) * (size // (len(body) + 256) + 1)
    return bytes(header + filler)[:size]


def pdf_like(rng: random.Random, size: int) -> bytes:
    parts = [b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    while sum(map(len, parts)) < size:
        parts.append(f"({_words(rng, 12)}) Tj\n".encode())
    return b"".join(parts)[:size] + b"\n%%EOF\n"


def _entry(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp: zipfile would otherwise stamp the current time and break determinism.
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def office_like(rng: random.Random, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_entry("[Content_Types].xml"), '<?xml version="1.0"?><Types/>')
        archive.writestr(_entry("word/document.xml"), f"<w:document>{_words(rng, size // 6)}</w:document>")
        archive.writestr(_entry("docProps/core.xml"), "<cp:coreProperties/>")
    return buffer.getvalue()


def zip_of_files(rng: random.Random, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(_entry(f"file{index}.txt"), text_file(rng, size // 3))
    return buffer.getvalue()


def random_blob(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


Maker = Callable[[random.Random, int], bytes]
SMALL: list[tuple[str, Maker]] = [("txt", text_file), ("sh", script_file), ("json", json_file)]
MEDIUM: list[tuple[str, Maker]] = [
    ("exe", pe_like), ("pdf", pdf_like), ("docx", office_like), ("zip", zip_of_files),
]  # fmt: skip
LARGE: list[tuple[str, Maker]] = [("bin", random_blob), ("exe", pe_like)]
SIZES = {"small": (1024, 8 * 1024), "medium": (50 * 1024, 500 * 1024), "large": (5 * 1024**2, 50 * 1024**2)}


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
