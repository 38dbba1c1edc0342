"""Content statistics read in one pass: byte histogram (for entropy) and digests."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from worker.digests import DIGESTS

READ_BLOCK = 1024 * 1024
HEAD_BYTES = 64 * 1024


def shannon_entropy(histogram: np.ndarray) -> float:
    """Bits per byte, 0.0 to 8.0."""
    total = int(histogram.sum())
    if total == 0:
        return 0.0
    probabilities = histogram[histogram > 0] / total
    return float(-(probabilities * np.log2(probabilities)).sum())


def scan(path: Path, known_digests: dict[str, str] | None = None) -> dict:
    """One read of the file: head bytes, size, entropy, and any digest not already known."""
    missing = [name for name in DIGESTS if not (known_digests or {}).get(name)]
    hashers = {name: hashlib.new(name) for name in missing}
    histogram = np.zeros(256, dtype=np.int64)
    head = b""
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            if size == 0:
                head = block[:HEAD_BYTES]
            size += len(block)
            histogram += np.bincount(np.frombuffer(block, dtype=np.uint8), minlength=256)
            for hasher in hashers.values():
                hasher.update(block)
    digests = dict(known_digests or {})
    digests.update({name: hasher.hexdigest() for name, hasher in hashers.items()})
    entropy = shannon_entropy(histogram)
    return {
        "head": head,
        "size": size,
        "entropy": round(entropy, 4) if math.isfinite(entropy) else 0.0,
        "digests": {name: digests[name] for name in DIGESTS},
    }
